//! openraft's own storage test suite, run against the real RocksDB store.

use cairn_meta::store::{self, LogStore, StateMachine};
use cairn_meta::types::{NodeId, TypeConfig};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{StorageError, StorageIOError};

struct RocksBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for RocksBuilder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<NodeId>> {
        let dir = tempfile::tempdir().map_err(|e| StorageError::from(StorageIOError::write(&e)))?;
        let (log, sm) =
            store::open(dir.path()).map_err(|e| StorageError::from(StorageIOError::write(&e)))?;
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite_passes_on_the_rocksdb_store() -> Result<(), Box<StorageError<NodeId>>> {
    Suite::test_all(RocksBuilder).map_err(Box::new)
}
