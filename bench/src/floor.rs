//! `zab-bench floor`: the physical floor of a quorum write on this machine, measured in the
//! same run as the load: the latency of a 1 KiB append + `fdatasync` on the disk the servers
//! use, and the loopback TCP round trip (64 bytes each way, two threads, Nagle off). A quorum
//! write through the leader costs at least one fdatasync (leader and follower sync in
//! parallel) plus two round trips (client ↔ leader, leader ↔ follower).
//!
//! The fdatasync is measured twice: by one thread alone, and by three threads at once, each on
//! its own file — what the three servers of an ensemble do for every write. On a virtual
//! machine the two differ widely (an idle vCPU halts and wakes late for the I/O completion:
//! here 0.9–4 ms alone against ~0.13 ms with three at once), and the three-at-once figure is
//! the one the servers meet, so the floor uses it.

use hdrhistogram::Histogram;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

/// The floor's parts, µs.
#[derive(Debug, Clone, Copy)]
pub struct Floor {
    /// fdatasync of a 1 KiB append, three threads at once (each its own file): p50, p99.
    pub fdatasync: (f64, f64),
    /// fdatasync of a 1 KiB append, one thread alone: p50, p99.
    pub fdatasync_alone: (f64, f64),
    /// Loopback round trip: p50, p99.
    pub rtt: (f64, f64),
    /// fdatasync p50 + 2 × round-trip p50.
    pub quorum_write: f64,
}

fn hist() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 60_000_000, 3)?)
}

fn since(t: Instant) -> u64 {
    u64::try_from(t.elapsed().as_micros())
        .unwrap_or(u64::MAX)
        .clamp(1, 60_000_000)
}

/// Appends 1 KiB and `fdatasync`s, repeatedly, for `d`, in `threads` scratch files under
/// `dir` at once (one thread each); every thread's latencies in one histogram.
pub fn fdatasync(dir: &Path, d: Duration, threads: usize) -> anyhow::Result<Histogram<u64>> {
    std::fs::create_dir_all(dir)?;
    let handles: Vec<_> = (0..threads.max(1))
        .map(|k| {
            let dir = dir.to_path_buf();
            std::thread::spawn(move || fdatasync_one(&dir, d, k))
        })
        .collect();
    let mut all = hist()?;
    for h in handles {
        let one = h
            .join()
            .map_err(|_| anyhow::anyhow!("an fdatasync thread panicked"))??;
        all.add(&one)?;
    }
    Ok(all)
}

fn fdatasync_one(dir: &Path, d: Duration, k: usize) -> anyhow::Result<Histogram<u64>> {
    let path = dir.join(format!("zab-bench-floor-{}-{k}.tmp", std::process::id()));
    let mut f = std::fs::File::create(&path)?;
    let block = [0x5au8; 1024];
    let mut h = hist()?;
    let end = Instant::now() + d;
    let r = (|| -> anyhow::Result<()> {
        while Instant::now() < end {
            let t = Instant::now();
            f.write_all(&block)?;
            f.sync_data()?;
            h.saturating_record(since(t));
        }
        Ok(())
    })();
    let _ = std::fs::remove_file(&path);
    r.map(|()| h)
}

/// Ping-pongs 64 bytes over loopback TCP for `d`.
pub fn loopback_rtt(d: Duration) -> anyhow::Result<Histogram<u64>> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        let mut buf = [0u8; 64];
        loop {
            if s.read_exact(&mut buf).is_err() {
                return Ok(());
            }
            s.write_all(&buf)?;
        }
    });
    let mut c = TcpStream::connect(addr)?;
    c.set_nodelay(true)?;
    let mut h = hist()?;
    let mut buf = [7u8; 64];
    let end = Instant::now() + d;
    while Instant::now() < end {
        let t = Instant::now();
        c.write_all(&buf)?;
        c.read_exact(&mut buf)?;
        h.saturating_record(since(t));
    }
    drop(c);
    let _ = echo.join();
    Ok(h)
}

/// Measures both, `d` each.
pub fn measure(dir: &Path, d: Duration) -> anyhow::Result<Floor> {
    let alone = fdatasync(dir, d, 1)?;
    let f = fdatasync(dir, d, 3)?;
    let r = loopback_rtt(d)?;
    let q = |h: &Histogram<u64>, p: f64| h.value_at_quantile(p) as f64;
    Ok(Floor {
        fdatasync: (q(&f, 0.5), q(&f, 0.99)),
        fdatasync_alone: (q(&alone, 0.5), q(&alone, 0.99)),
        rtt: (q(&r, 0.5), q(&r, 0.99)),
        quorum_write: q(&f, 0.5) + 2.0 * q(&r, 0.5),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_measures_both_parts() {
        let dir = std::env::temp_dir().join(format!("zab-bench-floor-test-{}", std::process::id()));
        let f = measure(&dir, Duration::from_millis(50)).expect("measure");
        assert!(f.fdatasync.0 >= 1.0 && f.rtt.0 >= 1.0, "{f:?}");
        assert!(
            f.quorum_write >= f.fdatasync.0 + 2.0 * f.rtt.0 - 0.5,
            "{f:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
