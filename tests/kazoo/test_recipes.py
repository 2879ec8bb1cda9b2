"""kazoo's recipes against a 3-server zabd ensemble, with the clients spread over the servers.

Each test coordinates several KazooClients, each on a different server, so every recipe runs
through forwarded writes, replicated sequential names and ephemerals, and watches fired on
followers as well as on the leader.
"""

import threading
import time

import pytest
from kazoo.exceptions import (
    BadVersionError,
    LockTimeout,
    NoNodeError,
    NodeExistsError,
    NotEmptyError,
    RolledBackError,
    RuntimeInconsistency,
)

# Generous: two cores are shared by three servers, the clients and other jobs.
WAIT = 60.0


def wait_until(predicate, what, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def run_threads(targets):
    threads = [threading.Thread(target=t, daemon=True) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT * 2)
        assert not t.is_alive(), "a client thread did not finish"


class Errors:
    """Collects exceptions raised in client threads so the test fails on them."""

    def __init__(self):
        self.errors = []
        self.lock = threading.Lock()

    def wrap(self, fn):
        def run():
            try:
                fn()
            except BaseException as e:  # noqa: BLE001 - reported by check()
                with self.lock:
                    self.errors.append(e)

        return run

    def check(self):
        if self.errors:
            raise self.errors[0]


# ----- plain operations, watches, transactions -------------------------------------------------


def test_crud_watches_and_transactions_across_servers(connect, root):
    a, b = connect(0), connect(1)
    a.create(root, b"")
    path, stat = a.create(f"{root}/n", b"v0", include_data=True)
    assert path == f"{root}/n"
    assert (stat.version, stat.cversion, stat.numChildren, stat.dataLength) == (0, 0, 0, 2)
    assert stat.czxid == stat.mzxid == stat.pzxid
    b.sync(root)
    data, st = b.get(f"{root}/n")
    assert data == b"v0" and st == stat
    assert b.exists(f"{root}/missing") is None

    # DataWatch and ChildrenWatch re-register on every event (kazoo never sends SetWatches).
    seen_data, seen_children = [], []
    b.DataWatch(f"{root}/n", lambda data, stat: seen_data.append(data))
    b.ChildrenWatch(root, lambda children: seen_children.append(sorted(children)))
    wait_until(lambda: seen_data == [b"v0"] and seen_children == [["n"]], "initial watch calls")
    a.set(f"{root}/n", b"v1")
    a.set(f"{root}/n", b"v2", version=1)
    with pytest.raises(BadVersionError):
        a.set(f"{root}/n", b"v3", version=1)
    wait_until(lambda: seen_data[-1:] == [b"v2"], "data watch on set")
    a.create(f"{root}/m")
    wait_until(lambda: seen_children[-1:] == [["m", "n"]], "children watch on create")
    with pytest.raises(NodeExistsError):
        a.create(f"{root}/m")
    with pytest.raises(NotEmptyError):
        a.delete(root)

    # A transaction: all or nothing, results per operation.
    t = a.transaction()
    t.create(f"{root}/t1", b"1")
    t.check(f"{root}/n", 2)
    t.set_data(f"{root}/n", b"v3")
    t.delete(f"{root}/m")
    results = t.commit()
    assert results[0] == f"{root}/t1", results
    assert results[1] is True, results
    assert results[2].version == 3, results
    assert results[3] is True, results
    b.sync(root)
    assert sorted(b.get_children(root)) == ["n", "t1"]
    assert b.get(f"{root}/n")[0] == b"v3"

    t = a.transaction()
    t.create(f"{root}/t2", b"2")
    t.check(f"{root}/n", 99)
    t.delete(f"{root}/t1")
    results = t.commit()
    assert isinstance(results[0], RolledBackError), results
    assert isinstance(results[1], BadVersionError), results
    assert isinstance(results[2], RuntimeInconsistency), results
    b.sync(root)
    assert sorted(b.get_children(root)) == ["n", "t1"]
    wait_until(lambda: seen_children[-1:] == [["n", "t1"]], "children watch after transaction")
    assert b.exists(f"{root}/t2") is None
    with pytest.raises(NoNodeError):
        b.get(f"{root}/t2")


def test_digest_acls(connect, root):
    from kazoo.security import make_digest_acl

    alice = connect(0, auth_data=[("digest", "alice:secret")])
    alice.create(root, b"")
    acl = make_digest_acl("alice", "secret", all=True)
    alice.create(f"{root}/private", b"hidden", acl=[acl])
    acls, _ = alice.get_acls(f"{root}/private")
    assert [(a.perms, a.id.scheme, a.id.id) for a in acls] == [
        (31, "digest", "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=")
    ]
    eve = connect(1)
    eve.sync(root)
    from kazoo.exceptions import NoAuthError

    with pytest.raises(NoAuthError):
        eve.get(f"{root}/private")
    eve.add_auth("digest", "alice:secret")
    assert eve.get(f"{root}/private")[0] == b"hidden"
    eve.delete(f"{root}/private")


# ----- recipes ---------------------------------------------------------------------------------


def test_lock_gives_mutual_exclusion_across_servers(connect, root):
    clients = [connect(i) for i in range(3)]
    path = f"{root}/lock"
    errors = Errors()
    holder = []
    state = {"inside": 0, "max_inside": 0, "count": 0}
    guard = threading.Lock()
    rounds = 5

    def contender(i):
        lock = clients[i].Lock(path, f"client-{i}")

        def run():
            for _ in range(rounds):
                with lock:
                    with guard:
                        state["inside"] += 1
                        state["max_inside"] = max(state["max_inside"], state["inside"])
                        holder.append(i)
                    # Read-modify-write of a znode: lost updates would show a race.
                    zk = clients[i]
                    value, stat = zk.get(f"{root}/value")
                    time.sleep(0.005)
                    zk.set(f"{root}/value", str(int(value) + 1).encode(), version=stat.version)
                    with guard:
                        state["inside"] -= 1

        return run

    clients[0].create(f"{root}/value", b"0", makepath=True)
    run_threads([errors.wrap(contender(i)) for i in range(3)])
    errors.check()
    assert state["max_inside"] == 1
    assert len(holder) == 3 * rounds
    clients[2].sync(root)
    assert clients[2].get(f"{root}/value")[0] == str(3 * rounds).encode()

    # A held lock: another client times out, sees the holder among the contenders, and gets
    # it once the holder releases it (its ephemeral node deleted on another server).
    first = clients[0].Lock(path, "first")
    assert first.acquire(timeout=WAIT)
    second = clients[1].Lock(path, "second")
    with pytest.raises(LockTimeout):
        second.acquire(timeout=0.5)
    assert clients[2].Lock(path).contenders()[0] == "first"
    got = threading.Event()
    t = threading.Thread(target=lambda: second.acquire(timeout=WAIT) and got.set(), daemon=True)
    t.start()
    wait_until(lambda: len(clients[2].Lock(path).contenders()) == 2, "second contender queued")
    assert not got.is_set()
    first.release()
    assert got.wait(WAIT)
    second.release()
    # A lock holder whose session ends releases the lock.
    third = clients[2].Lock(path, "third")
    assert third.acquire(timeout=WAIT)
    waiter = clients[0].Lock(path, "waiter")
    clients[2].stop()
    assert waiter.acquire(timeout=WAIT)
    waiter.release()


def test_election_elects_one_leader_at_a_time(connect, root):
    clients = [connect(i) for i in range(3)]
    path = f"{root}/election"
    errors = Errors()
    leaders = []
    release = [threading.Event() for _ in range(3)]
    guard = threading.Lock()
    state = {"leading": 0, "max": 0}

    def candidate(i):
        election = clients[i].Election(path, f"candidate-{i}")

        def lead():
            with guard:
                state["leading"] += 1
                state["max"] = max(state["max"], state["leading"])
                leaders.append(i)
            release[i].wait(WAIT)
            with guard:
                state["leading"] -= 1

        return lambda: election.run(lead)

    threads = [threading.Thread(target=errors.wrap(candidate(i)), daemon=True) for i in range(3)]
    for t in threads:
        t.start()
    observer = clients[0].Election(path)
    wait_until(lambda: len(observer.contenders()) == 3, "three contenders")
    for n in range(1, 4):
        wait_until(lambda: len(leaders) == n, f"leader number {n}")
        current = leaders[-1]
        assert observer.contenders()[0] == f"candidate-{current}"
        time.sleep(0.1)
        assert len(leaders) == n, "a second leader while the first one leads"
        release[current].set()
    for t in threads:
        t.join(WAIT)
    errors.check()
    assert sorted(leaders) == [0, 1, 2]
    assert state["max"] == 1


def test_barrier_blocks_until_removed(connect, root):
    a, b, c = connect(0), connect(1), connect(2)
    path = f"{root}/barrier"
    a.Barrier(path).create()
    errors = Errors()
    passed = []

    def waiter(zk, name):
        def run():
            assert zk.Barrier(path).wait(WAIT)
            passed.append(name)

        return run

    threads = [
        threading.Thread(target=errors.wrap(waiter(b, "b")), daemon=True),
        threading.Thread(target=errors.wrap(waiter(c, "c")), daemon=True),
    ]
    for t in threads:
        t.start()
    assert not b.Barrier(path).wait(0.3), "the barrier is up"
    time.sleep(0.2)
    assert passed == []
    assert a.Barrier(path).remove()
    for t in threads:
        t.join(WAIT)
    errors.check()
    assert sorted(passed) == ["b", "c"]
    assert c.Barrier(path).wait(1), "a removed barrier does not block"


def test_double_barrier_enters_and_leaves_together(connect, root):
    clients = [connect(i) for i in range(3)]
    path = f"{root}/double"
    errors = Errors()
    entered, left = [], []
    guard = threading.Lock()

    def member(i):
        def run():
            barrier = clients[i].DoubleBarrier(path, 3)
            time.sleep(0.1 * i)
            barrier.enter()
            with guard:
                entered.append((i, len(left)))
            time.sleep(0.1 * (2 - i))
            barrier.leave()
            with guard:
                left.append((i, len(entered)))

        return run

    run_threads([errors.wrap(member(i)) for i in range(3)])
    errors.check()
    # Nobody entered before all three arrived, nobody left before all three entered.
    assert sorted(i for i, _ in entered) == [0, 1, 2]
    assert all(n_left == 0 for _, n_left in entered)
    assert all(n_entered == 3 for _, n_entered in left)
    clients[0].sync(path)
    assert clients[0].get_children(path) == []


def test_counter_counts_every_increment(connect, root):
    clients = [connect(i) for i in range(3)]
    path = f"{root}/counter"
    errors = Errors()
    per_client = 20

    def incrementer(i):
        def run():
            counter = clients[i].Counter(path)
            for _ in range(per_client):
                counter += 1

        return run

    run_threads([errors.wrap(incrementer(i)) for i in range(3)])
    errors.check()
    counter = clients[1].Counter(path)
    clients[1].sync(path)
    assert counter.value == 3 * per_client
    counter -= 5
    assert counter.value == 3 * per_client - 5
    floats = clients[2].Counter(f"{root}/float", default=0.0)
    floats += 2.5
    assert clients[0].Counter(f"{root}/float", default=0.0).value == 2.5


def test_queue_is_fifo_with_priorities(connect, root):
    producer, consumer = connect(0), connect(1)
    path = f"{root}/queue"
    q = producer.Queue(path)
    for k in range(5):
        q.put(f"item-{k}".encode())
    q.put(b"urgent", priority=10)
    q.put(b"first", priority=1)
    q.put(b"bulk-1", priority=200)
    q.put(b"bulk-2", priority=200)
    assert len(q) == 9
    consumer.sync(path)
    c = consumer.Queue(path)
    got = []
    while True:
        item = c.get()
        if item is None:
            break
        got.append(item)
    assert got == [b"first", b"urgent"] + [f"item-{k}".encode() for k in range(5)] + [
        b"bulk-1",
        b"bulk-2",
    ]
    assert len(c) == 0

    # Concurrent consumers on three servers: every item is taken exactly once.
    for k in range(30):
        q.put(str(k).encode())
    clients = [producer, consumer, connect(2)]
    taken = [[] for _ in range(3)]
    errors = Errors()

    def take(i):
        def run():
            mine = clients[i].Queue(path)
            while True:
                item = mine.get()
                if item is None:
                    return
                taken[i].append(item)

        return run

    run_threads([errors.wrap(take(i)) for i in range(3)])
    errors.check()
    everything = sorted(int(x) for t in taken for x in t)
    assert everything == list(range(30))


def test_locking_queue_consumes_each_item_once(connect, root):
    producer = connect(0)
    path = f"{root}/lq"
    q = producer.LockingQueue(path)
    q.put_all([str(k).encode() for k in range(6)], priority=1)
    for k in range(6, 12):
        q.put(str(k).encode(), priority=k % 3)
    assert len(q) == 12
    consumers = [connect(1), connect(2)]
    taken = [[] for _ in consumers]
    errors = Errors()

    def consume(i):
        def run():
            mine = consumers[i].LockingQueue(path)
            while True:
                item = mine.get(timeout=2)
                if item is None:
                    if len(mine) == 0:
                        return
                    continue
                assert mine.holds_lock()
                taken[i].append(int(item))
                assert mine.consume()

        return run

    run_threads([errors.wrap(consume(i)) for i in range(2)])
    errors.check()
    assert sorted(taken[0] + taken[1]) == list(range(12))
    # An item taken but released (not consumed) goes back to the queue.
    q.put(b"again")
    mine = consumers[0].LockingQueue(path)
    assert mine.get(timeout=WAIT) == b"again"
    assert mine.release()
    other = consumers[1].LockingQueue(path)
    assert other.get(timeout=WAIT) == b"again"
    assert other.consume()
    assert len(other) == 0


def test_semaphore_bounds_concurrent_holders(connect, root):
    clients = [connect(i) for i in range(3)] + [connect(i) for i in range(3)]
    path = f"{root}/sem"
    errors = Errors()
    guard = threading.Lock()
    state = {"inside": 0, "max": 0, "entries": 0}

    def holder(i):
        def run():
            sem = clients[i].Semaphore(path, f"holder-{i}", max_leases=2)
            for _ in range(3):
                assert sem.acquire(timeout=WAIT)
                with guard:
                    state["inside"] += 1
                    state["max"] = max(state["max"], state["inside"])
                    state["entries"] += 1
                    assert state["inside"] <= 2
                time.sleep(0.05)
                with guard:
                    state["inside"] -= 1
                sem.release()

        return run

    run_threads([errors.wrap(holder(i)) for i in range(len(clients))])
    errors.check()
    assert state["entries"] == 3 * len(clients)
    # (Whether two leases overlapped above depends on scheduling; below they do by construction.)
    assert 1 <= state["max"] <= 2

    # Two holders fill the semaphore; a third cannot acquire until one releases.
    s0 = clients[0].Semaphore(path, "s0", max_leases=2)
    s1 = clients[1].Semaphore(path, "s1", max_leases=2)
    s2 = clients[2].Semaphore(path, "s2", max_leases=2)
    assert s0.acquire(timeout=WAIT) and s1.acquire(timeout=WAIT)
    assert sorted(s2.lease_holders()) == ["s0", "s1"]
    assert not s2.acquire(blocking=False)
    s0.release()
    assert s2.acquire(timeout=WAIT)
    assert sorted(clients[3].Semaphore(path, max_leases=2).lease_holders()) == ["s1", "s2"]
    s1.release()
    s2.release()
