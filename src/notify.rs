//! Messages to users (sign-in codes by email or SMS, new-device and blocked-login
//! alerts), sent by a thread of their own: actors and request handlers only queue them, so a slow mail
//! relay never holds up a login. A full queue drops the message and counts it.

use std::io::Write as _;
use std::path::PathBuf;

use serde::Serialize;
use tokio::sync::mpsc;

use crate::config::{EmailTransport, NotifyConfig, SmsTransport};
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
    /// A login the risk engine asked a second factor of.
    UnusualSignIn,
    /// A one-time code by SMS (sign-in, or confirming a phone number).
    SmsCode,
    /// An invitation to set a password (a provisioned user created without one).
    Invitation,
    /// A link to set a new password, which an operator required.
    PasswordReset,
}

impl EmailKind {
    /// Stable name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::LoginCode => "login_code",
            Self::NewDevice => "new_device",
            Self::LoginBlocked => "login_blocked",
            Self::UnusualSignIn => "unusual_sign_in",
            Self::SmsCode => "sms_code",
            Self::Invitation => "invitation",
            Self::PasswordReset => "password_reset",
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

/// One text message.
#[derive(Clone, Debug, Serialize)]
pub struct Sms {
    /// What it is about.
    pub kind: EmailKind,
    /// When it was queued.
    pub at: Timestamp,
    /// Recipient number (E.164).
    pub to: String,
    /// The text.
    pub body: String,
}

/// A message on its way.
#[derive(Debug)]
enum Outgoing {
    Email(Email),
    Sms(Sms),
}

/// The sending side; cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    tx: mpsc::Sender<Outgoing>,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
    /// Messages queued and not yet handed to their transport.
    pending: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Notifier {
    /// Starts the sender thread for `cfg`. It ends when every `Notifier` is dropped.
    pub fn start(
        cfg: &NotifyConfig,
        metrics: std::sync::Arc<crate::metrics::Metrics>,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel(cfg.queue);
        let transport = (cfg.email.clone(), cfg.sms.clone());
        let m = std::sync::Arc::clone(&metrics);
        let pending = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let left = std::sync::Arc::clone(&pending);
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
                rt.block_on(run(transport, rx, m, left));
            })?;
        Ok(Self {
            tx,
            metrics,
            pending,
        })
    }

    /// Queues `email`; never waits. Returns whether it was queued.
    pub fn send(&self, email: Email) -> bool {
        let kind = email.kind.as_str();
        self.queue(kind, Outgoing::Email(email))
    }

    /// Queues a text message; never waits. Returns whether it was queued.
    pub(crate) fn send_sms(&self, sms: Sms) -> bool {
        let kind = sms.kind.as_str();
        self.queue(kind, Outgoing::Sms(sms))
    }

    /// Queues `email`, waiting up to `limit` for room in the queue (an invitation is the
    /// only way its user gets in: it is worth the wait). Returns whether it was queued.
    pub async fn send_waiting(&self, email: Email, limit: std::time::Duration) -> bool {
        let kind = email.kind.as_str();
        self.pending
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let queued = matches!(
            tokio::time::timeout(limit, self.tx.send(Outgoing::Email(email))).await,
            Ok(Ok(()))
        );
        if !queued {
            self.pending
                .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        }
        self.count(kind, queued);
        queued
    }

    /// Waits, up to `limit`, until every queued message was handed to its transport;
    /// whether they all were.
    pub async fn drained(&self, limit: std::time::Duration) -> bool {
        let start = std::time::Instant::now();
        while self.pending.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            if start.elapsed() >= limit {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        true
    }

    fn queue(&self, kind: &'static str, message: Outgoing) -> bool {
        self.pending
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let queued = self.tx.try_send(message).is_ok();
        if !queued {
            self.pending
                .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        }
        self.count(kind, queued);
        queued
    }

    fn count(&self, kind: &'static str, queued: bool) {
        let outcome = if queued { "queued" } else { "dropped" };
        self.metrics
            .emails
            .get_or_create(&crate::metrics::EmailLabels { kind, outcome })
            .inc();
        if !queued {
            tracing::warn!(kind, "notification queue full; email dropped");
        }
    }
}

async fn run(
    (email_transport, sms_transport): (EmailTransport, SmsTransport),
    mut rx: mpsc::Receiver<Outgoing>,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
    pending: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    let sender = Sender::new(email_transport);
    let texter = Texter::new(sms_transport);
    while let Some(message) = rx.recv().await {
        let (kind, result) = match &message {
            Outgoing::Email(e) => (e.kind.as_str(), sender.deliver(e).await),
            Outgoing::Sms(m) => (m.kind.as_str(), texter.deliver(m).await),
        };
        let outcome = match result {
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
        pending.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Appends `record` as one JSON line to `path`.
async fn append_line(path: &std::path::Path, record: &impl Serialize) -> Result<(), String> {
    let mut line = serde_json::to_vec(record).map_err(|e| e.to_string())?;
    line.push(b'\n');
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        open_private(&path)?.write_all(&line)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())
}

/// Opens the outbox for appending. It holds sign-in codes, so it is created readable by
/// its owner only, and a file found readable by others is narrowed to that.
fn open_private(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        opts.mode(0o600);
        let f = opts.open(path)?;
        let mode = f.metadata()?.permissions().mode();
        if mode & 0o077 != 0 {
            f.set_permissions(std::fs::Permissions::from_mode(mode & 0o700))?;
        }
        Ok(f)
    }
    #[cfg(not(unix))]
    opts.open(path)
}

enum Texter {
    Outbox(PathBuf),
    Webhook {
        client: reqwest::Client,
        url: String,
    },
}

impl Texter {
    fn new(t: SmsTransport) -> Self {
        match t {
            SmsTransport::Outbox(path) => Self::Outbox(path),
            SmsTransport::Webhook(url) => Self::Webhook {
                client: reqwest::Client::builder()
                    .timeout(std::time::Duration::from_secs(10))
                    .build()
                    .unwrap_or_default(),
                url,
            },
        }
    }

    async fn deliver(&self, sms: &Sms) -> Result<(), String> {
        match self {
            Self::Outbox(path) => append_line(path, sms).await,
            Self::Webhook { client, url } => {
                let resp = client
                    .post(url)
                    .json(&serde_json::json!({"to": sms.to, "body": sms.body}))
                    .send()
                    .await
                    .map_err(|e| e.without_url().to_string())?;
                if resp.status().is_success() {
                    Ok(())
                } else {
                    Err(format!("gateway answered {}", resp.status()))
                }
            }
        }
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
            Self::Outbox(path) => append_line(path, email).await,
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

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::open_private;

    #[test]
    fn the_outbox_is_readable_by_its_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.jsonl");
        open_private(&path).unwrap();
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode();
        assert_eq!(mode(&path) & 0o777, 0o600);
        // One written by an older build, readable by everyone, is narrowed.
        let old = dir.path().join("old.jsonl");
        std::fs::write(&old, b"{}\n").unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
        open_private(&old).unwrap();
        assert_eq!(mode(&old) & 0o777, 0o600);
    }
}
