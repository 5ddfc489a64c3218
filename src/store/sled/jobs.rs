//! The scheduler's jobs in the sled tree: `j<job>` → the job's state, `r<job>\0<run>` →
//! one run of its history; and `n` → the runtime deny-list (see the layout in the parent
//! module).

use super::SledStore;
use crate::store::{JobStore, PolicyStore, StoreError};

const JOB: u8 = b'j';
const JOB_RUN: u8 = b'r';

pub(super) fn job_key(name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + name.len());
    k.push(JOB);
    k.extend_from_slice(name.as_bytes());
    k
}

/// `r<job>\0`: the prefix of a job's runs (job names hold no NUL).
fn job_runs_prefix(name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + name.len() + 8);
    k.push(JOB_RUN);
    k.extend_from_slice(name.as_bytes());
    k.push(0);
    k
}

pub(super) fn job_run_key(name: &str, run: u64) -> Vec<u8> {
    let mut k = job_runs_prefix(name);
    k.extend_from_slice(&run.to_be_bytes());
    k
}

impl JobStore for SledStore {
    fn job(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree.get(job_key(name))?.map(|v| v.to_vec()))
    }

    fn job_runs(&self, name: &str) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let prefix = job_runs_prefix(name);
        self.tree
            .scan_prefix(&prefix)
            .map(|kv| {
                let (k, v) = kv?;
                let run = k
                    .get(prefix.len()..)
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map(u64::from_be_bytes)
                    .ok_or_else(|| StoreError::Io("bad job run key".into()))?;
                Ok((run, v.to_vec()))
            })
            .collect()
    }
}

impl PolicyStore for SledStore {
    fn deny_list(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree.get(super::DENY_LIST)?.map(|v| v.to_vec()))
    }

    fn dashboards(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.tree
            .scan_prefix([super::DASHBOARD])
            .map(|kv| {
                let (k, v) = kv?;
                let name = std::str::from_utf8(&k[1..])
                    .map_err(|_| StoreError::Io("bad dashboard key".into()))?;
                Ok((name.to_owned(), v.to_vec()))
            })
            .collect()
    }

    fn dashboard(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .tree
            .get(super::dashboard_key(name))?
            .map(|v| v.to_vec()))
    }
}
