use serde_json::{Value, json};

use super::*;
use crate::{
    http::UpstreamLeg,
    identity::{FingerprintKey, Principal, PrincipalSource},
};

/// The sample log object of Kong's log plugins (Kong docs, file-log
/// plugin, "Log Format"), as documented.
const KONG_SAMPLE: &str = r#"{
    "request": {
        "method": "GET",
        "uri": "/get",
        "url": "http://httpbin.org:8000/get",
        "size": "75",
        "querystring": {},
        "headers": {
            "accept": "*/*",
            "host": "httpbin.org",
            "user-agent": "curl/7.37.1"
        }
    },
    "upstream_uri": "/",
    "response": {
        "status": 200,
        "size": "434",
        "headers": {
            "Content-Length": "197",
            "via": "kong/0.3.0",
            "Connection": "close",
            "access-control-allow-credentials": "true",
            "Content-Type": "application/json",
            "server": "nginx",
            "access-control-allow-origin": "*"
        }
    },
    "tries": [
        {"state": "next", "code": 502, "ip": "127.0.0.1", "port": 8000},
        {"ip": "127.0.0.1", "port": 8000}
    ],
    "authenticated_entity": {
        "consumer_id": "80f74eef-31b8-45d5-c525-ae532297ea8e",
        "id": "eaa330c0-4cff-47f5-c79e-b2e4f355207e"
    },
    "route": {
        "created_at": 1521555129, "hosts": null, "id": "75818c5f-202d-4b82-a553-6a46e7c9a19e",
        "methods": null, "paths": ["/example-path"], "preserve_host": false,
        "protocols": ["http", "https"], "regex_priority": 0,
        "service": {"id": "0590139e-7481-466c-bcdf-929adcaaf804"},
        "strip_path": true, "updated_at": 1521555129
    },
    "service": {
        "connect_timeout": 60000, "created_at": 1521554518, "host": "example.com",
        "id": "0590139e-7481-466c-bcdf-929adcaaf804", "name": "myservice", "path": "/",
        "port": 80, "protocol": "http", "read_timeout": 60000, "retries": 5,
        "updated_at": 1521554518, "write_timeout": 60000
    },
    "workspaces": [{"id": "b7cac81a-05dc-41f5-b6dc-b87e29b6c3a3", "name": "default"}],
    "consumer": {
        "username": "demo",
        "created_at": 1491847011000,
        "id": "35b03bfc-7a5b-4a23-a594-aa350c585fa8"
    },
    "latencies": {"proxy": 1430, "kong": 9, "request": 1921},
    "client_ip": "127.0.0.1",
    "started_at": 1433209822425
}"#;

/// The fields of the sample the sensor cannot know from the wire: Kong's
/// own configuration objects, their ids, and headers it does not keep.
const UNKNOWABLE: &[&str] = &[
    "route",
    "service",
    "workspaces",
    "tries",
    "request.headers",
    "response.headers",
    "request.querystring",
];

/// Every key path of `v` (objects only), dotted.
fn paths(v: &Value, prefix: &str, out: &mut Vec<String>) {
    if let Value::Object(map) = v {
        for (k, child) in map {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            out.push(path.clone());
            if !UNKNOWABLE.contains(&path.as_str()) {
                paths(child, &path, out);
            }
        }
    }
}

/// `tx`'s record as a JSON value, to index.
fn value(tx: &Transaction) -> Value {
    serde_json::to_value(record(tx)).unwrap()
}

/// A joined request: client leg, upstream leg with Kong's consumer.
fn joined() -> Transaction {
    let mut t = Transaction::sample("192.0.2.7", 1_795_219_200_123_000_000, 200);
    t.path = "/get?page=2&apikey=REDACTED&flag".into();
    t.host = Some("api.example:8000".into());
    t.user_agent = Some("curl/8.5.0".into());
    t.request_id = Some("2f6946328ffc4946b8c9120704a4a155".into());
    t.consumer = Some("demo".into());
    t.consumer_id = Some("35b03bfc-7a5b-4a23-a594-aa350c585fa8".into());
    t.principal = Principal::new(b"demo", PrincipalSource::KongConsumer);
    t.kong_credential = Some(FingerprintKey::from_bytes([1; 32]).fingerprint(b"cred"));
    t.latencies = crate::http::Latencies {
        request: Some(12.4),
        proxy: Some(9.6),
        kong: Some(2.8),
    };
    t.upstream = Some(UpstreamLeg {
        server_ip: "10.77.1.2".parse().unwrap(),
        server_port: 8080,
        path: Some("/get?page=2&apikey=REDACTED&flag".into()),
        status: Some(200),
        latency_ms: Some(9.0),
    });
    t
}

#[test]
fn every_field_of_kongs_sample_is_there() {
    let sample: Value = serde_json::from_str(KONG_SAMPLE).unwrap();
    let (mut want, mut have) = (Vec::new(), Vec::new());
    paths(&sample, "", &mut want);
    paths(&value(&joined()), "", &mut have);
    let missing: Vec<_> = want.iter().filter(|p| !have.contains(p)).collect();
    assert!(missing.is_empty(), "missing: {missing:?}");
}

#[test]
fn values_are_the_transactions() {
    let r = value(&joined());
    assert_eq!(r["client_ip"], "192.0.2.7");
    assert_eq!(r["started_at"], 1_795_219_200_123u64);
    assert_eq!(
        r["request"]["url"],
        "http://api.example:8000/get?page=2&apikey=REDACTED&flag"
    );
    assert_eq!(
        r["request"]["querystring"],
        json!({"page": "2", "apikey": "REDACTED", "flag": true})
    );
    assert_eq!(r["response"]["status"], 200);
    assert_eq!(
        r["response"]["headers"]["x-kong-request-id"],
        "2f6946328ffc4946b8c9120704a4a155"
    );
    assert_eq!(
        r["latencies"],
        json!({"request": 12, "proxy": 10, "kong": 3})
    );
    assert_eq!(r["consumer"]["username"], "demo");
    assert_eq!(
        r["authenticated_entity"]["consumer_id"],
        "35b03bfc-7a5b-4a23-a594-aa350c585fa8"
    );
    assert_eq!(r["tries"], json!([{"ip": "10.77.1.2", "port": 8080}]));
    assert_eq!(r["source"], "upstream");
}

#[test]
fn response_and_latencies_are_there_without_a_response() {
    let mut t = Transaction::sample("192.0.2.8", 1_795_219_200_000_000_000, 200);
    t.status = None;
    let r = value(&t);
    assert_eq!(r["response"]["status"], Value::Null);
    assert_eq!(
        r["latencies"],
        json!({"request": null, "proxy": null, "kong": null})
    );
    assert_eq!(r["source"], Value::Null);
    let mut rejected = Transaction::sample("192.0.2.8", 1_795_219_200_000_000_000, 401);
    rejected.server_port = 8443;
    let r = value(&rejected);
    assert_eq!(r["source"], "kong");
    assert!(
        r["request"]["url"]
            .as_str()
            .unwrap()
            .starts_with("https://")
    );
    let q = serde_json::to_value(querystring("/p?b&a=1&a=2&a=3#frag&c=4")).unwrap();
    assert_eq!(q, json!({"a": ["1", "2", "3"], "b": true}));
    let q = serde_json::to_value(querystring("/p?f&f=1&f")).unwrap();
    assert_eq!(q, json!({"f": [true, "1", true]}));
}

/// Written straight from the record, an object's keys come out in byte
/// order at every level, as a `serde_json::Value` (a sorted map) writes
/// them: the same bytes the sensor wrote when it built one.
#[test]
fn keys_are_written_in_byte_order_at_every_level() {
    let mut minimal = Transaction::sample("192.0.2.9", 1_795_219_200_000_000_000, 200);
    minimal.path = "/".into();
    for tx in [joined(), minimal] {
        let direct = serde_json::to_string(&record(&tx)).unwrap();
        let sorted = serde_json::to_string(&value(&tx)).unwrap();
        assert_eq!(direct, sorted);
    }
}
