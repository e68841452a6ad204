//! Choice flags (`--hook`, `--syslog-body`, ...): parsed by the library's
//! [`Choice`] names, listed in `--help`.

use std::{ffi::OsStr, marker::PhantomData};

use clap::{
    Arg, Command,
    builder::{PossibleValue, TypedValueParser},
    error::{Error, ErrorKind},
};
use sensor::choice::Choice;

/// A clap value parser for a [`Choice`] enum: its names, listed in help.
#[derive(Clone)]
pub struct ChoiceParser<T>(PhantomData<T>);

impl<T> ChoiceParser<T> {
    /// The parser.
    pub fn new() -> Self {
        Self(PhantomData)
    }
}

impl<T: Choice + Clone + Send + Sync> TypedValueParser for ChoiceParser<T> {
    type Value = T;

    fn parse_ref(&self, cmd: &Command, _: Option<&Arg>, value: &OsStr) -> Result<T, Error> {
        let text = value.to_str().unwrap_or_default();
        T::parse(text).map_err(|e| Error::raw(ErrorKind::InvalidValue, e).with_cmd(cmd))
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(
            T::CHOICES.iter().map(|(n, _)| PossibleValue::new(*n)),
        ))
    }
}
