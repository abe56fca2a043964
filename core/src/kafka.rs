//! Kafka client settings shared by the collector and the detector.
//!
//! Kept as plain data rendered to librdkafka `key=value` pairs, so the core
//! crate does not link librdkafka and every binary configures security the
//! same way (one `[kafka]` table in every config file).

use serde::Deserialize;

use crate::config::{Invalid, Validate};

/// `[kafka]` table.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KafkaSettings {
    /// Bootstrap servers, `host:port,host:port`.
    pub brokers: String,
    /// `plaintext`, `ssl`, `sasl_plaintext` or `sasl_ssl`.
    #[serde(default = "default_protocol")]
    pub security_protocol: String,
    /// CA bundle (PEM) that signed the brokers' certificates.
    #[serde(default)]
    pub ssl_ca_location: Option<String>,
    /// Client certificate and key (PEM) for mutual TLS.
    #[serde(default)]
    pub ssl_certificate_location: Option<String>,
    #[serde(default)]
    pub ssl_key_location: Option<String>,
    /// `SCRAM-SHA-256`, `SCRAM-SHA-512` or `PLAIN`.
    #[serde(default)]
    pub sasl_mechanism: Option<String>,
    #[serde(default)]
    pub sasl_username: Option<String>,
    /// Password, or better `sasl_password_file` so it stays out of the config.
    #[serde(default)]
    pub sasl_password: Option<String>,
    #[serde(default)]
    pub sasl_password_file: Option<String>,
    /// Extra librdkafka properties, for what this table does not name.
    #[serde(default)]
    pub extra: std::collections::BTreeMap<String, String>,
}

fn default_protocol() -> String {
    "plaintext".into()
}

impl KafkaSettings {
    pub fn plaintext(brokers: &str) -> Self {
        KafkaSettings {
            brokers: brokers.into(),
            security_protocol: default_protocol(),
            ssl_ca_location: None,
            ssl_certificate_location: None,
            ssl_key_location: None,
            sasl_mechanism: None,
            sasl_username: None,
            sasl_password: None,
            sasl_password_file: None,
            extra: Default::default(),
        }
    }

    /// The librdkafka properties these settings stand for. Reads the
    /// password file, hence the `Result`.
    pub fn client_properties(&self) -> Result<Vec<(String, String)>, String> {
        let mut out = vec![
            ("bootstrap.servers".to_string(), self.brokers.clone()),
            (
                "security.protocol".to_string(),
                self.security_protocol.clone(),
            ),
        ];
        let mut opt = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                out.push((k.to_string(), v.clone()));
            }
        };
        opt("ssl.ca.location", &self.ssl_ca_location);
        opt("ssl.certificate.location", &self.ssl_certificate_location);
        opt("ssl.key.location", &self.ssl_key_location);
        opt("sasl.mechanism", &self.sasl_mechanism);
        opt("sasl.username", &self.sasl_username);
        opt("sasl.password", &self.sasl_password);
        if let Some(file) = &self.sasl_password_file {
            let pw = std::fs::read_to_string(file)
                .map_err(|e| format!("kafka.sasl_password_file {file}: {e}"))?;
            out.push(("sasl.password".into(), pw.trim_end().to_string()));
        }
        for (k, v) in &self.extra {
            out.push((k.clone(), v.clone()));
        }
        Ok(out)
    }
}

impl Validate for KafkaSettings {
    fn validate(&self) -> Result<(), Invalid> {
        if self.brokers.trim().is_empty() {
            return Err(Invalid::new(
                "kafka.brokers",
                "is empty",
                "set it to host:port of at least one broker",
            ));
        }
        let proto = self.security_protocol.as_str();
        if !matches!(proto, "plaintext" | "ssl" | "sasl_plaintext" | "sasl_ssl") {
            return Err(Invalid::new(
                "kafka.security_protocol",
                format!("`{proto}` is not a protocol"),
                "use plaintext, ssl, sasl_plaintext or sasl_ssl",
            ));
        }
        if proto.starts_with("sasl") {
            match self.sasl_mechanism.as_deref() {
                Some("SCRAM-SHA-256" | "SCRAM-SHA-512" | "PLAIN") => {}
                other => {
                    return Err(Invalid::new(
                        "kafka.sasl_mechanism",
                        format!("{other:?} with security_protocol {proto}"),
                        "set SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN",
                    ))
                }
            }
            if self.sasl_username.is_none() {
                return Err(Invalid::new(
                    "kafka.sasl_username",
                    "is missing",
                    "set the SASL user name",
                ));
            }
            if self.sasl_password.is_none() && self.sasl_password_file.is_none() {
                return Err(Invalid::new(
                    "kafka.sasl_password_file",
                    "no password given",
                    "set sasl_password_file (preferred) or sasl_password",
                ));
            }
        }
        if self.ssl_certificate_location.is_some() != self.ssl_key_location.is_some() {
            return Err(Invalid::new(
                "kafka.ssl_key_location",
                "client certificate and key must be given together",
                "set both ssl_certificate_location and ssl_key_location, or neither",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sasl_needs_mechanism_and_credentials() {
        let mut k = KafkaSettings::plaintext("127.0.0.1:9092");
        assert!(k.validate().is_ok());
        k.security_protocol = "sasl_ssl".into();
        assert_eq!(k.validate().unwrap_err().key, "kafka.sasl_mechanism");
        k.sasl_mechanism = Some("SCRAM-SHA-512".into());
        k.sasl_username = Some("mof".into());
        k.sasl_password = Some("pw".into());
        assert!(k.validate().is_ok());
        let props = k.client_properties().expect("props");
        assert!(props.contains(&("sasl.username".into(), "mof".into())));
    }
}
