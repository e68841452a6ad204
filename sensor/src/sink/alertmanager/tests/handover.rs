//! A SIGHUP replaces the sinks: the new Alertmanager sink takes the old
//! one's episodes over and goes on re-sending them.

use std::time::Duration;

use super::{
    fixtures::*,
    sender::{server, wait},
};
use crate::sink::{
    Delivery, Sinks,
    alertmanager::{Alertmanager, AlertmanagerConfig, TlsFiles},
};

#[test]
fn a_replacing_sink_goes_on_re_sending_the_episodes_of_the_old_one() {
    let (addr, got) = server(200);
    let config = AlertmanagerConfig {
        targets: vec![format!("http://{addr}").parse().unwrap()],
        tls: TlsFiles::default(),
        auth: None,
        node: "kong-1".into(),
        resend: Duration::from_millis(300),
        queue: 16,
        max_active: 10,
        drain: Duration::from_secs(1),
    };
    let start =
        || -> Box<dyn crate::sink::Sink> { Box::new(Alertmanager::start(&config).unwrap()) };
    let mut sinks = Sinks::new(vec![start()]);
    sinks.alert(&flood("a", State::Firing, T0));
    wait(&got, 1);
    sinks.replace(vec![start()]);
    let before = got.lock().unwrap().len();
    let resent = wait(&got, before + 2);
    assert!(resent.len() >= before + 2, "re-sent after the replacement");
    assert!(
        resent[before..]
            .iter()
            .all(|(_, _, b)| b[0]["labels"]["id"] == "a")
    );
    sinks.alert(&flood("a", State::Resolved, T0 + 300 * SECOND));
    sinks.stop();
    let last = got.lock().unwrap().last().cloned().unwrap();
    assert_eq!(last.2[0]["endsAt"], "2026-11-21T00:05:00.000000000Z");
    assert_eq!(
        sinks.delivery(),
        [Delivery {
            sink: "alertmanager",
            target: format!("http://{addr}"),
            sent: 2,
            forgotten: Some(0),
            ..Delivery::default()
        }]
    );
}
