//! Tests of `net.rs`: the inbox's bound, handshakes that must not displace a live learner, the
//! rejoin backoff, the bounds of the send path (the command channel's push back, a learner
//! that does not read dropped at `peerSendQueueLimitBytes`, a synchronization not counted)
//! and a stream written in its place among the replica thread's direct writes.

use super::*;
use zab_spec::ZnodeTxn;

fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

/// A leader (server 1 of 3) whose network runs here; its events are counted.
async fn leader() -> (NetConfig, Arc<std::sync::atomic::AtomicUsize>) {
    let (cfg, connects, _, _) = leader_with(1 << 20).await;
    (cfg, connects)
}

/// A leader with `peerSendQueueLimitBytes` of `limit`: its configuration, its counts of
/// learners connected and of peers disconnected, and its replica thread's sender.
async fn leader_with(
    limit: usize,
) -> (
    NetConfig,
    Arc<std::sync::atomic::AtomicUsize>,
    Arc<std::sync::atomic::AtomicUsize>,
    QuorumSender<ZnodeTxn>,
) {
    let ids = [ServerId(1), ServerId(2), ServerId(3)];
    let cfg = NetConfig {
        me: ServerId(1),
        election: ids.iter().map(|s| (*s, free_addr())).collect(),
        quorum: ids.iter().map(|s| (*s, free_addr())).collect(),
        ensemble: wire::ensemble_fingerprint(&ids),
        jute_max_buffer: 0xfffff,
        live_window: Duration::from_millis(400),
        tls: None,
        send_queue_limit: limit,
        inbox_limit: 64,
        breakdown: None,
    };
    let state = Arc::new(NetState::default());
    state.leading.store(true, Ordering::SeqCst);
    let connects = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let disconnects = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (seen, gone) = (Arc::clone(&connects), Arc::clone(&disconnects));
    let sink: NetSink<ZnodeTxn> = Box::new(move |ev| {
        match ev {
            NetEvent::LearnerConnected { .. } => seen.fetch_add(1, Ordering::SeqCst),
            NetEvent::Disconnected { .. } => gone.fetch_add(1, Ordering::SeqCst),
            _ => 0,
        };
        true
    });
    // The command sender must outlive the test's connections.
    let (tx, direct) = start(cfg.clone(), state, sink).await.expect("start");
    std::mem::forget(tx);
    (cfg, connects, disconnects, direct)
}

fn hello_as(cfg: &NetConfig, sid: u64) -> Hello {
    Hello {
        purpose: Purpose::Quorum,
        sid: ServerId(sid),
        ensemble: cfg.ensemble,
    }
}

async fn heartbeat(stream: &mut PeerStream) {
    let mut buf = BytesMut::new();
    wire::encode_frame::<ZnodeTxn>(&Frame::Heartbeat, &mut buf);
    stream.write_all(&buf).await.expect("write");
}

/// The inbox admits up to its limit, then waits until the replica thread takes a frame;
/// a frame taken that was never counted does not open a slot.
#[tokio::test]
async fn the_inbox_waits_at_its_limit() {
    let gauge = Arc::new(InboxGauge::default());
    gauge.taken();
    for _ in 0..2 {
        gauge.admit(2).await;
    }
    assert_eq!(gauge.queued(), 2);
    let waiting = tokio::time::timeout(Duration::from_millis(100), gauge.admit(2)).await;
    assert!(waiting.is_err(), "a third frame waits");
    let g = Arc::clone(&gauge);
    let third = tokio::spawn(async move { g.admit(2).await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    gauge.taken();
    tokio::time::timeout(Duration::from_secs(5), third)
        .await
        .expect("admitted once one is taken")
        .expect("task");
    assert_eq!(gauge.queued(), 2);
}

/// The displacement attack: a second handshake with a connected learner's id, while that
/// connection is live, is refused; once the first connection is silent past the window (a
/// dead peer), a reconnect is accepted.
#[tokio::test]
async fn a_second_handshake_does_not_displace_a_live_learner() {
    let (cfg, connects) = leader().await;
    let addr = cfg.quorum[&ServerId(1)];
    let (mut first, w) = handshake(addr, ServerId(1), hello_as(&cfg, 2), None)
        .await
        .expect("first");
    assert_eq!(w.status, HandshakeStatus::Accepted);
    for _ in 0..3 {
        heartbeat(&mut first).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (_, w) = handshake(addr, ServerId(1), hello_as(&cfg, 2), None)
            .await
            .expect("second");
        assert_eq!(w.status, HandshakeStatus::Refused, "a live learner stays");
    }
    // The first connection still works: it is still the registered one.
    heartbeat(&mut first).await;
    assert_eq!(connects.load(Ordering::SeqCst), 1);
    // Silent past the window: a reconnect (the learner restarted) replaces it.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (_, w) = handshake(addr, ServerId(1), hello_as(&cfg, 2), None)
        .await
        .expect("reconnect");
    assert_eq!(w.status, HandshakeStatus::Accepted);
    // Another learner is unaffected throughout.
    let (_, w) = handshake(addr, ServerId(1), hello_as(&cfg, 3), None)
        .await
        .expect("other");
    assert_eq!(w.status, HandshakeStatus::Accepted);
}

/// The rogue-epoch loop: a leader that drops the follower right after the handshake (as a
/// follower whose accepted epoch is ahead sees: LEADERINFO too old, LOOKING, the same
/// leader elected again) is joined again after a growing wait, not in a tight loop; and
/// still joined again (the wait is bounded).
#[tokio::test]
async fn a_leader_that_drops_us_at_once_is_rejoined_with_a_bounded_backoff() {
    let ids = [ServerId(1), ServerId(2), ServerId(3)];
    let leader = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let mut quorum: BTreeMap<ServerId, SocketAddr> =
        ids.iter().map(|s| (*s, free_addr())).collect();
    quorum.insert(ServerId(1), leader.local_addr().expect("addr"));
    let cfg = NetConfig {
        me: ServerId(2),
        election: ids.iter().map(|s| (*s, free_addr())).collect(),
        quorum,
        ensemble: wire::ensemble_fingerprint(&ids),
        jute_max_buffer: 0xfffff,
        live_window: Duration::from_millis(400),
        tls: None,
        send_queue_limit: 1 << 20,
        inbox_limit: 64,
        breakdown: None,
    };
    let accepted = Arc::new(AtomicU64::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = leader.accept().await {
            let mut hello = [0u8; HELLO_LEN];
            if s.read_exact(&mut hello).await.is_ok() {
                let w = wire::encode_welcome(&Welcome {
                    status: HandshakeStatus::Accepted,
                    sid: ServerId(1),
                });
                let _ = s.write_all(&w).await;
                count.fetch_add(1, Ordering::SeqCst);
            }
            // Dropped at once.
        }
    });
    let (down_tx, mut down_rx) = mpsc::unbounded_channel();
    let sink: NetSink<ZnodeTxn> = Box::new(move |ev| {
        if matches!(ev, NetEvent::Disconnected { .. }) {
            let _ = down_tx.send(());
        }
        true
    });
    let (tx, _direct) = start(cfg, Arc::new(NetState::default()), sink)
        .await
        .expect("start");
    // The core's loop: every disconnection is followed by a new Connect at once.
    assert!(tx.send(NetCommand::Connect {
        leader: ServerId(1),
    }));
    let until = tokio::time::Instant::now() + Duration::from_secs(4);
    while let Ok(Some(())) = tokio::time::timeout_at(until, down_rx.recv()).await {
        assert!(tx.send(NetCommand::Connect {
            leader: ServerId(1),
        }));
    }
    // Waits of 0.1, 0.2, 0.4, 0.8, 1.6 s fit in 4 s: about six joins, not thousands.
    let n = accepted.load(Ordering::SeqCst);
    assert!((3..=10).contains(&n), "{n} joins in 4 s");
}

/// Reads frames from `stream` until `n` arrived (heartbeats skipped).
async fn read_frames_n(stream: &mut PeerStream, n: usize) -> Vec<Frame<ZnodeTxn>> {
    let limits = wire::FrameLimits::from_leader(0xfffff);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    while frames.len() < n {
        while let Some(body) = wire::take_frame(&mut buf, &limits).expect("frame") {
            let frame = wire::decode_frame::<ZnodeTxn>(&body).expect("decode");
            if !matches!(frame, Frame::Heartbeat) {
                frames.push(frame);
            }
        }
        if frames.len() >= n {
            break;
        }
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read_buf(&mut buf))
            .await
            .expect("frames within 5 s")
            .expect("read");
        assert!(read > 0, "connection closed after {} frames", frames.len());
    }
    frames
}

fn app(n: usize) -> Frame<ZnodeTxn> {
    Frame::App(1, bytes::Bytes::from(vec![0u8; n]))
}

/// The merge of issue 20's direct writes with streamed synchronization: a stream queued
/// by the replica thread is written in its place, after the frames queued before it and
/// before those queued after it (NEWLEADER must not overtake the SNAP).
#[tokio::test]
async fn a_stream_goes_out_in_its_place_among_direct_writes() {
    let (cfg, _, _, direct) = leader_with(1 << 20).await;
    let addr = cfg.quorum[&ServerId(1)];
    let (mut learner, w) = handshake(addr, ServerId(1), hello_as(&cfg, 2), None)
        .await
        .expect("handshake");
    assert_eq!(w.status, HandshakeStatus::Accepted);
    // Registered once the leader's side runs.
    for _ in 0..100 {
        if direct.shared.slots().contains_key(&ServerId(2)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    direct.send(ServerId(2), &app(1));
    let producer: FrameProducer<ZnodeTxn> = Box::new(|emit| {
        for n in 2..=4 {
            // A slow producer: the frames queued after the stream must wait for it.
            std::thread::sleep(Duration::from_millis(30));
            if !emit(app(n)) {
                return Ok(());
            }
        }
        Ok(())
    });
    direct.stream(ServerId(2), "test stream", producer);
    direct.send(
        ServerId(2),
        &Frame::Zab(QuorumMessage::NewLeader {
            zxid: Zxid::new(2, 0),
        }),
    );
    direct.send(ServerId(2), &app(5));
    direct.flush();
    let frames = read_frames_n(&mut learner, 6).await;
    let order: Vec<usize> = frames
        .iter()
        .map(|f| match f {
            Frame::App(_, data) => data.len(),
            Frame::Zab(QuorumMessage::NewLeader { .. }) => 0,
            other => panic!("unexpected frame {other:?}"),
        })
        .collect();
    assert_eq!(order, [1, 2, 3, 4, 0, 5]);
}

/// peerSendQueueLimitBytes holds on the direct path: a learner that does not read has at
/// most the limit of counted bytes queued (what its socket has not taken); past it, it is
/// dropped once (the core hears `Disconnected`), its connection closed and its queue freed.
#[tokio::test]
async fn a_learner_that_does_not_read_is_dropped_at_the_send_limit() {
    let limit = 64 * 1024;
    let (cfg, _, disconnects, direct) = leader_with(limit).await;
    let addr = cfg.quorum[&ServerId(1)];
    let (mut learner, w) = handshake(addr, ServerId(1), hello_as(&cfg, 2), None)
        .await
        .expect("handshake");
    assert_eq!(w.status, HandshakeStatus::Accepted);
    for _ in 0..100 {
        if direct.shared.slots().contains_key(&ServerId(2)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let out = direct
        .shared
        .slots()
        .get(&ServerId(2))
        .map(|(_, out, _, _)| Arc::clone(out))
        .expect("registered");
    let mut sent = 0usize;
    // Loopback buffers take a few MiB before the socket refuses bytes.
    while sent < 256 << 20 && direct.shared.slots().contains_key(&ServerId(2)) {
        direct.send(ServerId(2), &app(4096));
        direct.flush();
        sent += 4096;
        assert!(
            out.out.pending() <= limit,
            "{} bytes pending past the limit",
            out.out.pending()
        );
    }
    assert!(
        !direct.shared.slots().contains_key(&ServerId(2)),
        "dropped after {sent} bytes"
    );
    assert_eq!(disconnects.load(Ordering::SeqCst), 1);
    assert_eq!(out.out.pending(), 0, "its queue is freed");
    drop(out);
    // Sends to it are dropped now; the learner reads what its socket had, then the end.
    direct.send(ServerId(2), &app(4096));
    direct.flush();
    let mut sink = vec![0u8; 1 << 16];
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match learner.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the connection is closed");
    assert_eq!(disconnects.load(Ordering::SeqCst), 1, "reported once");
}

/// A learner's synchronization longer than the limit is queued whole (not counted); the
/// frames after its NEWLEADER count again. A stream starts a synchronization too.
#[test]
fn a_synchronization_is_not_counted_against_the_send_queue() {
    let zab = |m| Frame::<ZnodeTxn>::Zab(m);
    let new_leader = zab(QuorumMessage::NewLeader {
        zxid: Zxid::new(2, 0),
    });
    for by_stream in [false, true] {
        // No writer task: nothing is written, everything stays queued.
        let q = QuorumOut::new(Outgoing::via_task(None), true);
        let first = q.queue(&app(600));
        assert!(first > 600, "counted");
        if by_stream {
            q.stream::<ZnodeTxn>(ServerId(2), "test stream", Box::new(|_| Ok(())));
        } else {
            q.queue(&zab(QuorumMessage::Diff {
                last_zxid: Zxid::new(1, 0),
            }));
        }
        for _ in 0..5 {
            assert_eq!(q.queue(&app(600)), first, "part of the synchronization");
        }
        assert_eq!(q.queue(&new_leader), first);
        assert_eq!(
            q.queue(&app(600)),
            2 * first,
            "counted again after NEWLEADER"
        );
    }
}

/// The command channel holds at most its bound: a send to a full channel waits (push
/// back) until the network task takes a command, and nothing is dropped; once nobody
/// takes commands, sends fail instead of waiting.
#[test]
fn the_command_channel_pushes_back_at_its_bound() {
    let (commands, mut rx) = Commands::<ZnodeTxn>::channel(2);
    let cmd = |n| NetCommand::Connect {
        leader: ServerId(n),
    };
    assert!(commands.send(cmd(1)));
    assert!(commands.send(cmd(2)));
    assert_eq!(rx.len(), 2);
    let third = {
        let c = commands.clone();
        std::thread::spawn(move || c.send(cmd(3)))
    };
    std::thread::sleep(Duration::from_millis(200));
    assert!(!third.is_finished(), "the third waits for room");
    assert_eq!(rx.len(), 2, "never more than the bound");
    assert!(matches!(
        rx.try_recv(),
        Ok(NetCommand::Connect {
            leader: ServerId(1)
        })
    ));
    assert!(third.join().expect("thread"), "sent once there was room");
    assert_eq!(commands.waits(), 1);
    let got: Vec<u64> = std::iter::from_fn(|| rx.try_recv().ok())
        .map(|c| match c {
            NetCommand::Connect { leader } => leader.0,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(got, [2, 3], "in order, none dropped");
    drop(rx);
    assert!(!commands.send(cmd(4)), "nobody takes commands");
}
