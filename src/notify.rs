//! Messages to users (sign-in codes, new-device and blocked-login alerts), sent by a
//! thread of their own: actors and request handlers only queue them, so a slow mail
//! relay never holds up a login. A full queue drops the message and counts it.

use std::io::Write as _;
use std::path::PathBuf;

use serde::Serialize;
use tokio::sync::mpsc;

use crate::config::{EmailTransport, NotifyConfig};
use crate::domain::time::Timestamp;

/// What a message is about (metrics label; never its content).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EmailKind {
    /// A one-time sign-in code.
    LoginCode,
    /// A login from a device not seen before.
    NewDevice,
    /// A login refused by the risk engine.
    LoginBlocked,
}

impl EmailKind {
    /// Stable name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::LoginCode => "login_code",
            Self::NewDevice => "new_device",
            Self::LoginBlocked => "login_blocked",
        }
    }
}

/// One email.
#[derive(Clone, Debug, Serialize)]
pub struct Email {
    /// What it is about.
    pub kind: EmailKind,
    /// When it was queued.
    pub at: Timestamp,
    /// Recipient address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
}

/// The sending side; cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    tx: mpsc::Sender<Email>,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
}

impl Notifier {
    /// Starts the sender thread for `cfg`. It ends when every `Notifier` is dropped.
    pub fn start(
        cfg: &NotifyConfig,
        metrics: std::sync::Arc<crate::metrics::Metrics>,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel(cfg.queue);
        let transport = cfg.email.clone();
        let m = std::sync::Arc::clone(&metrics);
        std::thread::Builder::new()
            .name("roster-notify".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(error = %e, "notification thread cannot start");
                        return;
                    }
                };
                rt.block_on(run(transport, rx, m));
            })?;
        Ok(Self { tx, metrics })
    }

    /// Queues `email`; never waits. Returns whether it was queued.
    pub fn send(&self, email: Email) -> bool {
        let kind = email.kind.as_str();
        let queued = self.tx.try_send(email).is_ok();
        let outcome = if queued { "queued" } else { "dropped" };
        self.metrics
            .emails
            .get_or_create(&crate::metrics::EmailLabels { kind, outcome })
            .inc();
        if !queued {
            tracing::warn!(kind, "notification queue full; email dropped");
        }
        queued
    }
}

async fn run(
    transport: EmailTransport,
    mut rx: mpsc::Receiver<Email>,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
) {
    let sender = Sender::new(transport);
    while let Some(email) = rx.recv().await {
        let kind = email.kind.as_str();
        let outcome = match sender.deliver(&email).await {
            Ok(()) => "sent",
            Err(e) => {
                // The recipient is personal data: it is not logged.
                tracing::warn!(kind, error = %e, "email not delivered");
                "failed"
            }
        };
        metrics
            .emails
            .get_or_create(&crate::metrics::EmailLabels { kind, outcome })
            .inc();
    }
}

enum Sender {
    Outbox(PathBuf),
    Smtp {
        transport: lettre::AsyncSmtpTransport<lettre::Tokio1Executor>,
        from: String,
    },
}

impl Sender {
    fn new(t: EmailTransport) -> Self {
        match t {
            EmailTransport::Outbox(path) => Self::Outbox(path),
            EmailTransport::Smtp {
                host,
                port,
                from,
                credentials,
            } => {
                let mut b =
                    lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous(host)
                        .port(port)
                        .timeout(Some(std::time::Duration::from_secs(30)));
                if let Some((user, pass)) = credentials {
                    b = b.credentials(lettre::transport::smtp::authentication::Credentials::new(
                        user,
                        pass.expose().to_owned(),
                    ));
                }
                Self::Smtp {
                    transport: b.build(),
                    from,
                }
            }
        }
    }

    async fn deliver(&self, email: &Email) -> Result<(), String> {
        match self {
            Self::Outbox(path) => {
                let mut line = serde_json::to_vec(email).map_err(|e| e.to_string())?;
                line.push(b'\n');
                let path = path.clone();
                tokio::task::spawn_blocking(move || {
                    if let Some(dir) = path.parent() {
                        std::fs::create_dir_all(dir)?;
                    }
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&path)?
                        .write_all(&line)
                })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())
            }
            Self::Smtp { transport, from } => {
                use lettre::AsyncTransport as _;
                let msg = lettre::Message::builder()
                    .from(from.parse().map_err(|e| format!("from: {e}"))?)
                    .to(email.to.parse().map_err(|e| format!("to: {e}"))?)
                    .subject(email.subject.clone())
                    .header(lettre::message::header::ContentType::TEXT_PLAIN)
                    .body(email.body.clone())
                    .map_err(|e| e.to_string())?;
                transport
                    .send(msg)
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
        }
    }
}
