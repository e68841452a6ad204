//! The collector: keeps everything the pipeline emits in memory, for tests
//! and tools that want a bounded input's output as values.

use std::{cell::RefCell, rc::Rc};

use super::interface::Sink;
use crate::{detect::Alert, http::Transaction};

/// What a [`Collector`] kept.
#[derive(Debug, Default)]
pub struct Outputs {
    /// Transactions, in emission order.
    pub transactions: Vec<Transaction>,
    /// Alerts, in the order raised.
    pub alerts: Vec<Alert>,
}

/// A sink that clones every transaction and alert into shared [`Outputs`].
pub struct Collector(Rc<RefCell<Outputs>>);

impl Collector {
    /// A collector and the handle to read what it kept.
    pub fn new() -> (Self, Rc<RefCell<Outputs>>) {
        let shared = Rc::new(RefCell::new(Outputs::default()));
        (Self(Rc::clone(&shared)), shared)
    }
}

impl Sink for Collector {
    fn transaction(&mut self, tx: &Transaction) {
        self.0.borrow_mut().transactions.push(tx.clone());
    }

    fn alert(&mut self, alert: &Alert) {
        self.0.borrow_mut().alerts.push(alert.clone());
    }
}
