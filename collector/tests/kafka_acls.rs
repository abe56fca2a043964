//! `deploy/kafka/qalqan-kafka` against the stack's real Kafka (its
//! SASL/SCRAM listeners, plain and TLS, enforce ACLs): a collector's
//! credentials write its own agency's topic — also over TLS, trusting the
//! CA `deploy/kafka/make-certs` made — and nothing else; the detector's
//! read every agency and cannot write events in an agency's name.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

fn sasl_brokers() -> String {
    // The stack's SASL listener (deploy/local/stack), beside the test listener.
    let _ = qalqan_testkit::kafka_brokers();
    std::env::var("QALQAN_KAFKA_SASL_BROKERS").unwrap_or_else(|_| "127.0.0.1:19094".into())
}

/// Runs the provisioning script with the stack's jars and admin listener.
fn provision(args: &[&str], passwords: &Path, group_prefix: &str) {
    let root = qalqan_testkit::workspace_root();
    let env = qalqan_testkit::stack(&["env"]);
    let libs = env
        .lines()
        .find_map(|l| l.strip_prefix("export QALQAN_KAFKA_LIBS="))
        .expect("stack env names the Kafka jars")
        .to_owned();
    let out = Command::new(root.join("deploy/kafka/qalqan-kafka"))
        .args(args)
        .env("QALQAN_KAFKA_ADMIN", qalqan_testkit::kafka_brokers())
        .env("QALQAN_KAFKA_LIBS", libs)
        .env("QALQAN_PASSWORD_DIR", passwords)
        .env("DETECTOR_GROUP_PREFIX", group_prefix)
        .env("EVENTS_PARTITIONS", "1")
        .output()
        .expect("run qalqan-kafka");
    assert!(
        out.status.success(),
        "qalqan-kafka {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn client(user: &str, passwords: &Path) -> ClientConfig {
    let pw =
        std::fs::read_to_string(passwords.join(format!("{user}.password"))).expect("password file");
    let mut cc = ClientConfig::new();
    cc.set("bootstrap.servers", sasl_brokers())
        .set("security.protocol", "sasl_plaintext")
        .set("sasl.mechanism", "SCRAM-SHA-512")
        .set("sasl.username", user)
        .set("sasl.password", pw.trim());
    cc
}

/// Produces one record; `Err` with librdkafka's reason when refused.
fn produce_as(user: &str, passwords: &Path, topic: &str) -> Result<(), String> {
    let producer: FutureProducer = client(user, passwords)
        .set("message.timeout.ms", "15000")
        .create()
        .expect("producer");
    let delivery = producer.send_result(FutureRecord::<str, str>::to(topic).payload("probe"));
    match delivery {
        Err((e, _)) => Err(e.to_string()),
        Ok(f) => match futures_block_on(f) {
            Ok(Ok(_)) => Ok(()),
            Ok(Err((e, _))) => Err(e.to_string()),
            Err(_) => Err("cancelled".into()),
        },
    }
}

fn futures_block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

#[test]
fn a_collector_writes_only_its_own_agency_and_the_detector_only_reads_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let passwords = dir.path().join("credentials");
    let a = qalqan_testkit::unique("acl_a").replace('.', "_");
    let b = qalqan_testkit::unique("acl_b").replace('.', "_");
    let prefix = qalqan_testkit::unique("det").replace('.', "_");
    provision(&["agency", &a], &passwords, &prefix);
    provision(&["agency", &b], &passwords, &prefix);
    let detector_user = format!("{prefix}-user");
    provision(&["detector", &detector_user], &passwords, &prefix);
    let topic_a = format!("qalqan.events.{a}");
    let topic_b = format!("qalqan.events.{b}");

    // The real collector, authenticated as its agency, delivers its lines.
    let collector_user = format!("collector-{a}");
    let password_file = passwords.join(format!("{collector_user}.password"));
    let collect = |name: &str, kafka: String, line: &str| {
        let config = dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                "[collector]\nname = \"{name}\"\nagency = \"{a}\"\nstate_dir = \"{}\"\n\
                 [kafka]\n{kafka}sasl_mechanism = \"SCRAM-SHA-512\"\n\
                 sasl_username = \"{collector_user}\"\nsasl_password_file = \"{}\"\n\
                 [metrics]\nlisten = \"127.0.0.1:0\"\n",
                dir.path().join(format!("state-{name}")).display(),
                password_file.display()
            ),
        )
        .expect("config");
        let mut child = Command::new(env!("CARGO_BIN_EXE_qalqan-collector"))
            .arg("--config")
            .arg(&config)
            .arg("--stdin")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("collector");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(format!("{line}\n").as_bytes())
            .expect("feed");
        let out = child.wait_with_output().expect("collector exits");
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let in_topic_a = |ip: &str, n: usize| {
        qalqan_testkit::consume_all(
            &qalqan_testkit::kafka_brokers(),
            &topic_a,
            n,
            Duration::from_secs(30),
        )
        .iter()
        .any(|m| m.payload_str().contains(ip))
    };
    collect(
        "acl-col",
        format!("brokers = \"{}\"\nsecurity_protocol = \"sasl_plaintext\"\n", sasl_brokers()),
        "<38>Nov 27 05:00:01 web1 sshd[7]: Failed password for root from 203.0.113.9 port 4242 ssh2",
    );
    assert!(
        in_topic_a("203.0.113.9", 1),
        "the collector's event is in its agency's topic"
    );

    // The same collector over TLS (SASL_SSL), trusting the stack's CA.
    let env = qalqan_testkit::stack(&["env"]);
    let var = |name: &str| {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("export {name}=")))
            .unwrap_or_else(|| panic!("stack env has no {name}"))
            .to_owned()
    };
    collect(
        "acl-col-tls",
        format!(
            "brokers = \"{}\"\nsecurity_protocol = \"sasl_ssl\"\nssl_ca_location = \"{}\"\n",
            var("QALQAN_KAFKA_TLS_BROKERS"),
            var("QALQAN_KAFKA_CA")
        ),
        "<38>Nov 27 05:00:02 web1 sshd[7]: Failed password for root from 203.0.113.77 port 4243 ssh2",
    );
    assert!(
        in_topic_a("203.0.113.77", 2),
        "the event sent over TLS is in its agency's topic"
    );

    // The same credentials cannot write another agency's topic ...
    let refused = produce_as(&collector_user, &passwords, &topic_b).expect_err("must be refused");
    assert!(
        refused.contains("uthoriz"),
        "refused for authorization: {refused}"
    );
    // ... nor the signals or alerts topics.
    let refused =
        produce_as(&collector_user, &passwords, "qalqan.alerts").expect_err("must be refused");
    assert!(refused.contains("uthoriz"), "{refused}");

    // The detector reads any agency's events in its own group ...
    let consumer: BaseConsumer = client(&detector_user, &passwords)
        .set("group.id", format!("{prefix}.match"))
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic_a.as_str()]).expect("subscribe");
    let mut read = None;
    for _ in 0..300 {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(_)) => {
                read = Some(Ok(()));
                break;
            }
            Some(Err(e)) => read = Some(Err(e.to_string())),
            None => {}
        }
    }
    assert_eq!(read, Some(Ok(())), "the detector reads agency events");
    // ... but cannot put events in an agency's name.
    let refused = produce_as(&detector_user, &passwords, &topic_a).expect_err("must be refused");
    assert!(refused.contains("uthoriz"), "{refused}");
}
