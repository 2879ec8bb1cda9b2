//! Criterion microbenchmarks of the log's hot path on a real disk (a temporary directory):
//! one fsync per transaction with `Storage` directly, and group commit through `LogWriter`
//! (appends queued by the caller, one fsync per batch the writer thread takes).

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zab_server::storage::{LogWriter, StdFs, Storage, StorageConfig, WriterEvent};
use zab_spec::Zxid;

fn open(dir: &std::path::Path) -> Storage {
    let config = StorageConfig::new(dir, dir);
    Storage::open(Arc::new(StdFs), &config)
        .expect("open storage")
        .0
}

fn storage(c: &mut Criterion) {
    let mut g = c.benchmark_group("storage");
    g.sample_size(20).measurement_time(Duration::from_secs(4));
    let payload = vec![7u8; 1024];
    for batch in [1u64, 64] {
        g.throughput(Throughput::Elements(batch));
        g.bench_function(format!("append_1KiB_x{batch}_then_fsync"), |b| {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut s = open(dir.path());
            let mut counter = 0u32;
            b.iter(|| {
                for _ in 0..batch {
                    counter += 1;
                    s.append(Zxid::new(1, counter), &payload).expect("append");
                }
                s.sync().expect("sync")
            });
        });
    }
    g.finish();
}

/// Queues `iters` appends in bursts of `burst` and waits for each burst to be durable: the
/// writer thread takes whatever is queued as one batch with one fsync.
fn writer(c: &mut Criterion) {
    let mut g = c.benchmark_group("log_writer");
    g.sample_size(20).measurement_time(Duration::from_secs(4));
    let payload = Bytes::from(vec![7u8; 1024]);
    for burst in [1u64, 16, 256] {
        g.throughput(Throughput::Elements(burst));
        g.bench_function(format!("group_commit_1KiB_burst_{burst}"), |b| {
            let dir = tempfile::tempdir().expect("tempdir");
            let (tx, rx) = std::sync::mpsc::channel();
            let w = LogWriter::spawn(open(dir.path()), move |e| {
                let _ = tx.send(e);
            })
            .expect("spawn the writer");
            let mut counter = 0u32;
            b.iter_custom(|iters| {
                let t0 = Instant::now();
                for _ in 0..iters {
                    for _ in 0..burst {
                        counter += 1;
                        w.append(Zxid::new(1, counter), payload.clone())
                            .expect("append");
                    }
                    // Wait for the durability report covering the burst, as the server does
                    // before it ACKs.
                    loop {
                        match rx.recv().expect("writer event") {
                            WriterEvent::Durable { zxid, .. } if zxid >= Zxid::new(1, counter) => {
                                break;
                            }
                            WriterEvent::Durable { .. } => {}
                            WriterEvent::Failed(e) => panic!("storage failed: {e}"),
                        }
                    }
                }
                t0.elapsed()
            });
            w.shutdown().expect("shutdown");
        });
    }
    g.finish();
}

criterion_group!(benches, storage, writer);
criterion_main!(benches);
