//! Settings chosen by name (`--hook xdp`, `body = "cef"`): each such enum
//! lists its names once, and the command line and the config file parse
//! them through [`Choice::parse`].

/// An enum whose values are chosen by a lower-case name.
pub trait Choice: Copy + PartialEq + 'static {
    /// Every value with its name, in the order help lists them.
    const CHOICES: &'static [(&'static str, Self)];

    /// The value named `name` (ASCII case-insensitive).
    ///
    /// # Errors
    /// An unknown name; the message lists the known ones.
    fn parse(name: &str) -> Result<Self, String> {
        Self::CHOICES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|&(_, v)| v)
            .ok_or_else(|| {
                let known: Vec<_> = Self::CHOICES.iter().map(|(n, _)| *n).collect();
                format!("`{name}` is not one of {}", known.join(", "))
            })
    }

    /// This value's name.
    fn name(self) -> &'static str {
        Self::CHOICES
            .iter()
            .find(|(_, v)| *v == self)
            .map_or("", |(n, _)| n)
    }
}
