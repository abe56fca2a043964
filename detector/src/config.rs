//! The detector's TOML configuration (`deploy/detector/qalqan-detector.toml`
//! is the commented example; every key is documented there).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use qalqan_core::config::{duration, Invalid, Validate};
use qalqan_core::kafka::KafkaSettings;
use serde::Deserialize;

use crate::store::config::ClickHouseConfig;

/// Which parts of the pipeline this instance runs. Every role is its own
/// consumer group, so roles scale (and fail) independently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Stage 1: Sigma matching on `qalqan.events.*` and `qalqan.raw.*`.
    Match,
    /// Stage 2: correlation on `qalqan.signals`.
    Correlate,
    /// Every event and alert into ClickHouse.
    Archive,
}

/// The whole config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorConfig {
    #[serde(default)]
    pub detector: DetectorSection,
    pub kafka: KafkaSettings,
    #[serde(default)]
    pub topics: TopicsSection,
    #[serde(default)]
    pub rules: RulesSection,
    /// Stage 2 engine settings (lateness, state bounds, suppression).
    #[serde(default)]
    pub correlation: qalqan_correlation::EngineConfig,
    /// Stage 1 settings for single-event alerts.
    #[serde(default)]
    pub detection: DetectionSection,
    #[serde(default)]
    pub health: HealthSection,
    #[serde(default)]
    pub clickhouse: Option<ClickHouseConfig>,
    #[serde(default)]
    pub metrics: MetricsSection,
    #[serde(default)]
    pub raw: RawSection,
}

/// `[detector]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectorSection {
    pub roles: Vec<Role>,
    /// Consumer groups are `<group_prefix>.match`, `.correlate`, `.archive`.
    pub group_prefix: String,
    /// This instance's name, in its Kafka client ids and in stage 1's
    /// transactional id (`<group_prefix>.match-<instance>`). Unset: host
    /// name and process id, unique but new at every start. Set it to a name
    /// that no other running detector has and that stays the same across
    /// restarts (the host's name under systemd, the pod's in a
    /// StatefulSet): a restarted instance then aborts at once the Kafka
    /// transaction its crashed predecessor left open, which otherwise holds
    /// back stage 2's reading of the signals until Kafka times it out
    /// (`transaction.timeout.ms`, 60 s). Two running detectors with one
    /// name would fence each other's transactions.
    pub instance: Option<String>,
    /// Messages handled per batch before outputs are confirmed and offsets committed.
    pub batch_size: usize,
    /// Longest a batch stays open after its first message, backlog or not:
    /// an alert waits at most this long (plus the commit) to be released.
    #[serde(with = "duration")]
    pub batch_wait: Duration,
    /// Threads that decode events and evaluate Sigma rules for stage 1,
    /// beside the stage's own thread (which polls Kafka and keeps the
    /// state). 0 evaluates on the stage's thread. Unset: the cores beyond
    /// one, at most 8; so one worker on a 2-core machine, where it overlaps
    /// decoding and evaluation with the stage thread's polling, stateful
    /// half and commits (measured ~95k events/s against ~88k in place).
    pub match_workers: Option<usize>,
    /// How often an agency's collectors are checked for silence.
    #[serde(with = "duration")]
    pub silence_check_interval: Duration,
    /// Release stage 1's events in event-time order across the partitions
    /// of each agency (see [`crate::service::align`]), so that catching up
    /// on a backlog does not make correlation signals late.
    pub align_event_time: bool,
    /// Events stage 1 may hold for that ordering before it pauses the
    /// partition furthest ahead.
    pub align_budget: usize,
}

impl DetectorSection {
    /// Stage 1's alignment, from these keys and stage 2's lateness.
    pub fn align_settings(&self, lateness: Duration) -> crate::service::align::AlignSettings {
        let mut s = crate::service::align::AlignSettings::for_lateness(lateness);
        if !self.align_event_time {
            s.max_skew = Duration::ZERO;
        }
        s.budget = self.align_budget;
        s
    }
}

impl DetectorSection {
    /// Stage 1's worker threads: as configured, else the cores beyond one.
    pub fn match_workers(&self) -> usize {
        self.match_workers.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .saturating_sub(1)
                .min(8)
        })
    }
}

impl Default for DetectorSection {
    fn default() -> Self {
        DetectorSection {
            roles: vec![Role::Match, Role::Correlate, Role::Archive],
            group_prefix: "qalqan-detector".into(),
            instance: None,
            batch_size: 20000,
            batch_wait: Duration::from_millis(100),
            match_workers: None,
            silence_check_interval: Duration::from_secs(10),
            align_event_time: true,
            align_budget: 100_000,
        }
    }
}

/// `[topics]`: where everything is read and written. The defaults are the
/// names of DESIGN.md; tests and staging clusters use their own.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopicsSection {
    /// Regex subscription for the collectors' normalized events. The agency
    /// is the topic name's last dot-separated part, never the event body.
    pub events: String,
    /// Regex subscription for raw lines of third-party producers.
    pub raw: String,
    /// Correlation signals (stage 1 → stage 2), keyed by correlation group.
    pub signals: String,
    /// Alerts of both stages.
    pub alerts: String,
    /// Messages that could not be decoded, with the reason in a header.
    pub deadletter: String,
}

impl Default for TopicsSection {
    fn default() -> Self {
        TopicsSection {
            events: qalqan_core::topics::EVENTS_PATTERN.into(),
            raw: qalqan_core::topics::RAW_PATTERN.into(),
            signals: qalqan_core::topics::SIGNALS.into(),
            alerts: qalqan_core::topics::ALERTS.into(),
            deadletter: qalqan_core::topics::DEADLETTER.into(),
        }
    }
}

/// `[rules]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesSection {
    /// Rule files and directories (searched recursively for `*.yml`/`*.yaml`).
    pub paths: Vec<PathBuf>,
    /// Processing pipelines applied at compile time, in order. Unset: the
    /// shipped ones in `<first path>/pipelines`; `[]`: none.
    pub pipelines: Option<Vec<PathBuf>>,
    /// Values for `%name%` placeholders of `|expand` modifiers.
    pub placeholders: std::collections::BTreeMap<String, Vec<String>>,
    /// Refuse to start (and refuse a reload) if any rule is rejected.
    pub strict: bool,
    /// Reload when a file under `paths` changes (SIGHUP always reloads).
    pub watch: bool,
    #[serde(with = "duration")]
    pub watch_interval: Duration,
}

impl Default for RulesSection {
    fn default() -> Self {
        RulesSection {
            paths: vec![PathBuf::from("rules")],
            pipelines: None,
            placeholders: Default::default(),
            strict: false,
            watch: true,
            watch_interval: Duration::from_secs(5),
        }
    }
}

/// `[detection]`: single-event alerts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectionSection {
    /// Default suppression per rule, agency and source address (else user,
    /// else host): the first `first` alerts of each `for` period are sent,
    /// the rest counted on the next one sent. A rule's `qalqan.suppress`
    /// attribute overrides it (`qalqan: {suppress: off}` sends every alert).
    pub suppress: Option<qalqan_correlation::SuppressPolicy>,
}

impl Default for DetectionSection {
    fn default() -> Self {
        DetectionSection {
            suppress: Some(qalqan_correlation::SuppressPolicy {
                first: 1,
                period: Duration::from_secs(300),
            }),
        }
    }
}

/// `[health]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthSection {
    /// An agency with no collector heartbeat for this long raises an alert.
    #[serde(with = "duration")]
    pub silence_after: Duration,
    /// How far a collector's sequence may run past a missing number before it counts as lost.
    pub reorder_window: u64,
}

impl Default for HealthSection {
    fn default() -> Self {
        HealthSection {
            silence_after: Duration::from_secs(300),
            reorder_window: 100_000,
        }
    }
}

/// `[metrics]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    pub listen: SocketAddr,
}

impl Default for MetricsSection {
    fn default() -> Self {
        MetricsSection {
            listen: SocketAddr::from(([127, 0, 0, 1], 19102)),
        }
    }
}

/// `[raw]`: how third-party raw lines are parsed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSection {
    /// Lines longer than this are truncated and tagged.
    #[serde(with = "qalqan_core::config::size")]
    pub max_line_bytes: u64,
}

impl Default for RawSection {
    fn default() -> Self {
        RawSection {
            max_line_bytes: qalqan_core::parse::DEFAULT_MAX_LINE_BYTES as u64,
        }
    }
}

impl Validate for DetectorConfig {
    fn validate(&self) -> Result<(), Invalid> {
        self.kafka.validate()?;
        let d = &self.detector;
        if d.roles.is_empty() {
            return Err(Invalid::new(
                "detector.roles",
                "is empty",
                "list at least one of match, correlate, archive",
            ));
        }
        if d.batch_size == 0 || d.batch_size > 1_000_000 {
            return Err(Invalid::new(
                "detector.batch_size",
                format!("{} is out of range", d.batch_size),
                "use 1 to 1000000 (20000 is a good default)",
            ));
        }
        if !(1024..=10_000_000).contains(&d.align_budget) {
            return Err(Invalid::new(
                "detector.align_budget",
                format!("{} is out of range", d.align_budget),
                "use 1024 to 10000000 (100000 is a good default)",
            ));
        }
        if let Some(name) = &d.instance {
            let ok = (1..=100).contains(&name.len())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
            if !ok {
                return Err(Invalid::new(
                    "detector.instance",
                    format!("`{name}` is not an instance name"),
                    "use 1-100 characters of A-Z a-z 0-9 . _ -, unique among running detectors (e.g. the host name)",
                ));
            }
        }
        if let Some(n @ 65..) = d.match_workers {
            return Err(Invalid::new(
                "detector.match_workers",
                format!("{n} is out of range"),
                "use 0 to 64: about one per core left after Kafka and the other roles",
            ));
        }
        let t = &self.topics;
        for (key, pattern) in [("topics.events", &t.events), ("topics.raw", &t.raw)] {
            if !pattern.starts_with('^') {
                return Err(Invalid::new(
                    key,
                    "is not a regex subscription",
                    "start it with ^ (e.g. ^qalqan\\.events\\..+)",
                ));
            }
            if let Err(e) = regex::Regex::new(pattern) {
                return Err(Invalid::new(
                    key,
                    format!("is not a valid regex: {e}"),
                    "fix the pattern",
                ));
            }
        }
        for (key, topic) in [
            ("topics.signals", &t.signals),
            ("topics.alerts", &t.alerts),
            ("topics.deadletter", &t.deadletter),
        ] {
            let ok = !topic.is_empty()
                && topic.len() <= 249
                && topic
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
            if !ok {
                return Err(Invalid::new(
                    key,
                    format!("`{topic}` is not a Kafka topic name"),
                    "use 1-249 characters of A-Z a-z 0-9 . _ -",
                ));
            }
        }
        if self.rules.paths.is_empty() {
            return Err(Invalid::new(
                "rules.paths",
                "is empty",
                "list the rule directories, e.g. [\"/etc/qalqan/rules\"]",
            ));
        }
        if d.roles.contains(&Role::Archive) && self.clickhouse.is_none() {
            return Err(Invalid::new(
                "clickhouse",
                "the archive role needs a [clickhouse] table",
                "add [clickhouse] with url, or drop \"archive\" from detector.roles",
            ));
        }
        if let Some(ch) = &self.clickhouse {
            ch.validate()?;
        }
        self.correlation.validate().map_err(|mut i| {
            i.key = format!("correlation.{}", i.key);
            i
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn the_shipped_example_is_valid() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/detector/qalqan-detector.toml");
        let cfg: DetectorConfig = qalqan_core::config::load(&path).expect("example config loads");
        assert!(cfg.detector.roles.contains(&Role::Match));
    }

    #[test]
    fn the_kubernetes_configs_are_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/k8s/configmap.yaml");
        let text = std::fs::read_to_string(&path).expect("configmap.yaml");
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("YAML");
        let data = doc["data"].as_mapping().expect("data");
        assert_eq!(data.len(), 2);
        for (name, body) in data {
            let body = body.as_str().expect("a TOML document");
            let cfg = qalqan_core::config::from_str::<DetectorConfig>(body, Path::new("configmap"));
            assert!(cfg.is_ok(), "{name:?}: {cfg:?}");
        }
    }

    #[test]
    fn errors_name_the_key() {
        let p = Path::new("t.toml");
        let e = qalqan_core::config::from_str::<DetectorConfig>(
            "[kafka]\nbrokers = \"x:1\"\n[detector]\nroles = []\n",
            p,
        )
        .unwrap_err();
        assert!(e.to_string().contains("detector.roles"), "{e}");
        let e = qalqan_core::config::from_str::<DetectorConfig>("[kafka]\nbrokers = \"x:1\"\n", p)
            .unwrap_err();
        assert!(e.to_string().contains("key `clickhouse`"), "{e}");
        let e = qalqan_core::config::from_str::<DetectorConfig>(
            "[kafka]\nbrokers = \"x:1\"\nbogus = 1\n",
            p,
        )
        .unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
        let ok = qalqan_core::config::from_str::<DetectorConfig>(
            "[kafka]\nbrokers = \"x:1\"\n[detector]\nroles = [\"match\"]\n",
            p,
        );
        assert!(ok.is_ok(), "{ok:?}");
        let rules = qalqan_core::config::from_str::<DetectorConfig>(
            "[kafka]\nbrokers = \"x:1\"\n[detector]\nroles = [\"match\"]\n[rules]\npipelines = []\n[rules.placeholders]\nAdmins = [\"ws1\", \"ws2\"]\n",
            p,
        )
        .expect("placeholders parse");
        assert_eq!(rules.rules.pipelines, Some(vec![]));
        assert_eq!(rules.rules.placeholders["Admins"], ["ws1", "ws2"]);
        let e = qalqan_core::config::from_str::<DetectorConfig>(
            "[kafka]\nbrokers = \"x:1\"\n[rules.placeholders]\nAdmins = \"ws1\"\n",
            p,
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("Admins = \"ws1\"")
                && e.to_string().contains("expected a sequence"),
            "{e}"
        );
        let e = qalqan_core::config::from_str::<DetectorConfig>(
            "[kafka]\nbrokers = \"x:1\"\n[detector]\nroles = [\"match\"]\nmatch_workers = 65\n",
            p,
        )
        .unwrap_err();
        assert!(e.to_string().contains("detector.match_workers"), "{e}");
        let instance = |name: &str| {
            qalqan_core::config::from_str::<DetectorConfig>(
                &format!("[kafka]\nbrokers = \"x:1\"\n[detector]\nroles = [\"match\"]\ninstance = {name:?}\n"),
                p,
            )
        };
        let ok = instance("det-1.centre_a").expect("a stable instance name");
        assert_eq!(ok.detector.instance.as_deref(), Some("det-1.centre_a"));
        for bad in ["", "two words", "a/b", &"x".repeat(101)] {
            let e = instance(bad).unwrap_err();
            assert!(e.to_string().contains("detector.instance"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn match_workers_default_to_the_cores_beyond_one() {
        let mut d = DetectorSection::default();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(d.match_workers(), cores.saturating_sub(1).min(8));
        d.match_workers = Some(3);
        assert_eq!(d.match_workers(), 3);
    }
}
