//! A target that answers at once, in-process: what the generator alone can drive.

use bytes::Bytes;

use super::{CasResult, Consistency, Target, TargetError};

/// Answers every call immediately with success and touches no state.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoopTarget;

impl Target for NoopTarget {
    async fn put(&self, _key: Bytes, _value: Bytes) -> Result<(), TargetError> {
        Ok(())
    }

    async fn get(&self, _key: Bytes, _c: Consistency) -> Result<Option<Bytes>, TargetError> {
        Ok(None)
    }

    async fn cas(
        &self,
        _key: Bytes,
        _expected: Option<Bytes>,
        _new: Bytes,
    ) -> Result<CasResult, TargetError> {
        Ok(CasResult {
            succeeded: true,
            current: None,
        })
    }

    async fn txn(
        &self,
        _reads: Vec<Bytes>,
        _writes: Vec<(Bytes, Bytes)>,
    ) -> Result<(), TargetError> {
        Ok(())
    }
}
