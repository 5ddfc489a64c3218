//! `roster export-security-events`: the security events of a window as JSON lines for a
//! SIEM (`docs/security.md`), through a running server or from a stopped one's data
//! directory.

use std::io::Write as _;
use std::path::PathBuf;

use super::remote::Remote;
use super::{CliError, Target};
use crate::config::Config;
use crate::engine::{Principal, SiemWindow};

/// `roster export-security-events` arguments.
#[derive(clap::Args, Clone, Debug)]
pub struct SiemArgs {
    /// A server, or a data directory.
    #[command(flatten)]
    pub target: Target,
    /// From this time (RFC 3339, included; default a day before --to).
    #[arg(long)]
    pub from: Option<String>,
    /// To this time (RFC 3339, excluded; default now).
    #[arg(long)]
    pub to: Option<String>,
    /// Only events of this kind (e.g. login_failed).
    #[arg(long)]
    pub kind: Option<String>,
    /// The file to write (JSON lines).
    #[arg(long)]
    pub out: PathBuf,
}

fn parse<T: serde::de::DeserializeOwned>(flag: &str, v: &str) -> Result<T, CliError> {
    serde_json::from_value(serde_json::Value::String(v.to_owned()))
        .map_err(|e| CliError::Usage(format!("--{flag} {v:?}: {e}")))
}

fn create(a: &SiemArgs) -> Result<std::fs::File, CliError> {
    std::fs::File::create(&a.out)
        .map_err(|e| CliError::Failed(format!("creating {}: {e}", a.out.display())))
}

/// From a stopped server's data directory.
pub(super) async fn offline(config: Config, a: &SiemArgs) -> Result<(), CliError> {
    let window = SiemWindow {
        from: a.from.as_deref().map(|f| parse("from", f)).transpose()?,
        to: a.to.as_deref().map(|t| parse("to", t)).transpose()?,
        kind: a.kind.as_deref().map(|k| parse("kind", k)).transpose()?,
    };
    let file = create(a)?;
    let manager = super::open_local(config).await?;
    let by = Principal::System("export-security-events");
    let done = manager
        .ops()
        .export_security_events(&by, window, file)
        .await;
    manager.shutdown().await?;
    let (_, export) = done?;
    println!(
        "{} security events written to {} ({} unreadable left out)",
        export.events,
        a.out.display(),
        export.unreadable
    );
    Ok(())
}

/// Through a running server.
pub(super) async fn through_server(server: &Remote, a: &SiemArgs) -> Result<(), CliError> {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in [("from", &a.from), ("to", &a.to), ("kind", &a.kind)] {
        if let Some(v) = value {
            query.append_pair(name, v);
        }
    }
    let path = format!("/admin/security-events/export?{}", query.finish());
    let mut resp = server.send(reqwest::Method::GET, &path).await?;
    let mut out = std::io::BufWriter::new(create(a)?);
    let mut lines = 0u64;
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| CliError::Failed(format!("the export stopped before its end: {e}")))?
    {
        lines += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
        out.write_all(&chunk)
            .map_err(|e| CliError::Failed(format!("writing {}: {e}", a.out.display())))?;
    }
    out.flush()
        .map_err(|e| CliError::Failed(format!("writing {}: {e}", a.out.display())))?;
    println!("{lines} security events written to {}", a.out.display());
    Ok(())
}
