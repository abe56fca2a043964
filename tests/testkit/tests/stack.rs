//! The local stack works end to end: real Kafka, ClickHouse and Prometheus,
//! started by `deploy/local/stack` through the testkit.

use std::time::Duration;

use qalqan_testkit as testkit;

#[test]
fn kafka_round_trips_keys_payloads_and_partitions() {
    let brokers = testkit::kafka_brokers();
    let topic = testkit::unique("testkit.roundtrip");
    testkit::create_topic(&topic, 3);

    let records: Vec<(Option<String>, String)> = (0..30)
        .map(|i| (Some(format!("host-{}", i % 5)), format!("event {i}")))
        .collect();
    testkit::produce(&brokers, &topic, &records);

    let got = testkit::consume_all(&brokers, &topic, records.len(), Duration::from_secs(60));
    assert_eq!(
        got.len(),
        records.len(),
        "every produced record is read back once"
    );

    let mut payloads: Vec<String> = got.iter().map(|m| m.payload_str()).collect();
    payloads.sort();
    let mut sent: Vec<String> = records.iter().map(|(_, v)| v.clone()).collect();
    sent.sort();
    assert_eq!(payloads, sent);

    // Same key, same partition; and offsets grow within a partition.
    for message in &got {
        let key = message.key_str().expect("every record was keyed");
        let same_key_partition = got
            .iter()
            .filter(|m| m.key_str().as_deref() == Some(key.as_str()))
            .map(|m| m.partition);
        assert!(same_key_partition.clone().all(|p| p == message.partition));
        assert!((0..3).contains(&message.partition));
    }
    for partition in 0..3 {
        let offsets: Vec<i64> = got
            .iter()
            .filter(|m| m.partition == partition)
            .map(|m| m.offset)
            .collect();
        assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
    }
}

#[test]
fn consume_all_returns_what_is_there_when_fewer_arrive() {
    let brokers = testkit::kafka_brokers();
    let topic = testkit::unique("testkit.short");
    testkit::create_topic(&topic, 1);
    testkit::produce(&brokers, &topic, &[(None::<&str>, "only one")]);
    let got = testkit::consume_all(&brokers, &topic, 2, Duration::from_secs(3));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload_str(), "only one");
    assert_eq!(got[0].key, None);
}

#[test]
fn project_topics_exist_with_their_partition_counts() {
    let brokers = testkit::kafka_brokers();
    for (topic, partitions) in [
        ("qalqan.signals", 6),
        ("qalqan.alerts", 3),
        ("qalqan.deadletter", 1),
        ("qalqan.events.demo", 6),
    ] {
        let consumer: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .create()
            .expect("consumer");
        let metadata = rdkafka::consumer::Consumer::fetch_metadata(
            &consumer,
            Some(topic),
            Duration::from_secs(10),
        )
        .expect("metadata");
        let entry = &metadata.topics()[0];
        assert!(entry.error().is_none(), "{topic}: {:?}", entry.error());
        assert_eq!(entry.partitions().len(), partitions, "{topic}");
    }
}

#[test]
fn clickhouse_is_debian_18_16_over_http() {
    let version = testkit::clickhouse_query("SELECT version()");
    assert!(version.trim().starts_with("18."), "version: {version}");

    let database = testkit::unique("testkit");
    testkit::clickhouse_query(&format!("CREATE DATABASE {database}"));
    testkit::clickhouse_query(&format!(
        "CREATE TABLE {database}.t (n UInt32, s String) ENGINE = MergeTree ORDER BY n"
    ));
    testkit::clickhouse_query(&format!(
        "INSERT INTO {database}.t VALUES (2, 'b'), (1, 'a')"
    ));
    let rows = testkit::clickhouse_query(&format!(
        "SELECT n, s FROM {database}.t ORDER BY n FORMAT TSV"
    ));
    assert_eq!(rows, "1\ta\n2\tb\n");
    testkit::clickhouse_query(&format!("DROP DATABASE {database}"));
}

#[test]
fn clickhouse_errors_carry_the_server_message() {
    let error = testkit::clickhouse_try_query("SELECT no_such_column FROM system.one")
        .expect_err("an unknown column is an error");
    assert!(error.contains("no_such_column"), "{error}");
}

#[test]
fn prometheus_is_ready_and_scrapes_itself() {
    let url = testkit::prometheus_url();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut ready = agent.get(format!("{url}/-/ready")).call().expect("ready");
    assert_eq!(
        ready.status(),
        200,
        "{:?}",
        ready.body_mut().read_to_string()
    );

    // The scrape of itself lands within a few scrape intervals (5 s).
    let mut up = serde_json::Value::Null;
    for _ in 0..60 {
        up = testkit::prometheus_query("up{job=\"prometheus\"}");
        if up["result"][0]["value"][1] == "1" {
            return;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("Prometheus never scraped itself: {up}");
}

#[test]
fn stack_up_is_idempotent_and_status_reports_running() {
    testkit::kafka_brokers();
    testkit::clickhouse_url();
    testkit::prometheus_url();
    let again = testkit::stack(&["up"]);
    for service in ["kafka", "clickhouse", "prometheus"] {
        assert!(
            again.contains(&format!("{service}: already running")),
            "second up restarted {service}:\n{again}"
        );
    }
    let status = testkit::stack(&["status"]);
    for service in ["kafka", "clickhouse", "prometheus"] {
        let line = status
            .lines()
            .find(|l| l.starts_with(service))
            .unwrap_or_else(|| panic!("no status line for {service}:\n{status}"));
        assert!(line.contains("running"), "{line}");
    }
    let env = testkit::stack(&["env"]);
    assert!(
        env.contains("export QALQAN_KAFKA_BROKERS=127.0.0.1:19092"),
        "{env}"
    );
}

#[test]
fn shared_data_and_paths_resolve() {
    let root = testkit::workspace_root();
    assert!(root.join("Cargo.toml").is_file(), "{}", root.display());
    assert!(root.join("deploy/local/stack").is_file());
    let a = testkit::unique("a/b c");
    let b = testkit::unique("a/b c");
    assert_ne!(a, b);
    assert!(a.starts_with("a_b_c_"), "{a}");
    let missing = std::panic::catch_unwind(|| testkit::shared_data("no/such/file"));
    let message = missing
        .expect_err("missing data panics")
        .downcast::<String>()
        .expect("panic message");
    assert!(message.contains("test data missing"), "{message}");
}
