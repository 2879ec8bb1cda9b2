-------------------------------- MODULE Zab --------------------------------
(***************************************************************************)
(* Zab as zab implements it: the TLA+ twin of the Stateright model in      *)
(* model/ (crate zab-model), state for state.                             *)
(*                                                                         *)
(* spec/PROTOCOL.md is the normative prose; this module and model/src/ are *)
(* two formal renderings of it that must agree exactly:                    *)
(*                                                                         *)
(*  - one variable per field of ModelState (model/src/state.rs);           *)
(*  - one action per Action variant (model/src/action.rs), with the name   *)
(*    of TLA_NAMES and a body that mirrors the Rust handler in             *)
(*    model/src/next/*.rs line by line;                                    *)
(*  - one operator per invariant and example of model/src/invariants.rs,   *)
(*    under the same id;                                                   *)
(*  - the bounds of model/src/config.rs as constants, checked in action    *)
(*    guards (never as a CONSTRAINT), and the known-bug switches as the    *)
(*    constant Bug, spelled like Bug::tla_name().                          *)
(*                                                                         *)
(* ci/tla.sh checks the agreement: on shared configurations TLC's number   *)
(* of distinct states must equal Stateright's number of unique states, and *)
(* each bug switch must break the same invariant in both checkers.         *)
(* tla/README.md maps every action to its Rust handler and PROTOCOL.md     *)
(* section.                                                                *)
(*                                                                         *)
(* Writing style. A Rust handler clones the state, mutates the clone and   *)
(* returns it (or None when the action is disabled). Each action here does *)
(* the same with a record: Cur is the current state as a record with one   *)
(* field per variable, the body computes the successor record with EXCEPT  *)
(* (and with the helpers GoLooking, LeaderShutdown, RemoveLearner, ... that *)
(* are the Rust helpers of model/src/next/mod.rs), and Apply(t) makes it   *)
(* the next state. Every variable is therefore assigned in every step and  *)
(* no UNCHANGED list can drift from the Rust code.                         *)
(*                                                                         *)
(* Encodings (each one is a bijection on the values that occur, so that    *)
(* TLC's distinct states are exactly the model's unique states):           *)
(*  - server sK of PROTOCOL.md is K here (Rust Sid K-1);                   *)
(*  - a zxid is <<epoch, counter>>; 0x0 is <<0, 0>>;                       *)
(*  - an Option is encoded by a value that never occurs as Some(_): -1 for *)
(*    an index or an epoch, NullZxid for a zxid, 0 for a server or a       *)
(*    session, "NONE" for a sync mode, <<>> / <<x>> for a record;          *)
(*  - leader-only and follower-only variables hold the canonical reset     *)
(*    value outside the role (Rust: the Option is None), see WellFormed;   *)
(*  - a set of servers (a bitmask in Rust) is a set, a BTreeSet a set, a   *)
(*    Vec or VecDeque a sequence;                                          *)
(*  - a ZNode path is a sequence of components [name, seq]: "/a" is        *)
(*    <<[name |-> "a", seq |-> -1]>>, "/q-0000000001" is                   *)
(*    <<[name |-> "q-", seq |-> 1]>>, "/" is <<>>. seq is the sequence     *)
(*    suffix of a sequential node (ten digits in the real name).           *)
(***************************************************************************)
EXTENDS Integers, Sequences, FiniteSets, TLC

CONSTANTS
    N,              \* --servers: servers are 1..N
    MaxTxns,        \* --txns: client requests over the whole run
    MaxCrashes,     \* --crashes
    MaxPartitions,  \* --partitions
    MaxTimeouts,    \* --timeouts (LeaderTimeout)
    MaxSnapshots,   \* --snapshots (TakeSnapshot)
    MaxStorageFaults, \* --storage-faults (LoseEpochFiles, LoseLogSuffix, LoseDataDir)
    MaxEpoch,       \* --epochs: the largest epoch a leader may choose
    Bug,            \* "None" or one of BugNames (--bug)
    Workload        \* "Sessions" or "Sequential" (--workload)

BugNames == {"ZK4646", "ZK4643", "ZK4394", "ZK2845", "PaperProposeRecipients",
             "PaperRedundantPropose", "PaperCommitldZxid", "NoStorageRecovery"}

\* Config::validate (model/src/config.rs): 2..=7 servers (a single server needs no
\* agreement), at least one epoch, at most 60 requests. InitEpoch1 also needs MaxTxns >= 2
\* (its two requests count), which InitEpoch1 states as a conjunct of its own.
ASSUME /\ N \in 2..7
       /\ {MaxTxns, MaxCrashes, MaxPartitions, MaxTimeouts, MaxSnapshots,
           MaxStorageFaults} \subseteq Nat
       /\ MaxTxns <= 60
       /\ MaxEpoch \in Nat \ {0}
       /\ Bug \in BugNames \cup {"None"}
       /\ Workload \in {"Sessions", "Sequential"}

Server == 1..N

-----------------------------------------------------------------------------
(* Variables: one per field of ModelState (model/src/state.rs).            *)

\* ServerVars: per server, every role.
VARIABLES
    state,              \* "LOOKING", "FOLLOWING" or "LEADING"
    zabState,           \* "ELECTION", "DISCOVERY", "SYNCHRONIZATION", "BROADCAST"
    acceptedEpoch,      \* durable (paper f.p)
    currentEpoch,       \* durable (paper f.a)
    history,            \* accepted transactions [zxid, value], in memory
    persisted,          \* durable: length of the on-disk prefix of history
    lastCommitted,      \* length of the delivered prefix of history
    lastSnapshot,       \* durable: length of the prefix covered by the snapshot
    staleLastProcessed, \* ZK2845 only: stale last applied index, -1 = None
    recovering          \* durable: damaged storage detected, not yet restored (§7.1)

\* LeaderVars: canonical reset values unless state = "LEADING".
VARIABLES
    learners,           \* servers connected to the leader, itself included
    connecting,         \* servers whose FOLLOWERINFO was counted
    connectingLive,     \* the part of connecting still on the same connection
    electing,           \* electing[i][j]: <<>> or <<[peerLastZxid, inQuorum]>>
    ackldRecv,          \* servers whose ACK of NEWLEADER was counted
    ackldLive,          \* the part of ackldRecv still connected
    forwarding,         \* synced followers: every PROPOSAL and COMMIT goes there
    tempMaxEpoch,       \* one more than the largest accepted epoch seen
    ackSets,            \* ack sets of history[lastCommitted+1..], in order
    sendCounter         \* PaperRedundantPropose only: items broadcast so far

\* FollowerVars: canonical reset values unless state = "FOLLOWING".
VARIABLES
    leaderOf,           \* the leader followed (0 = None)
    syncMode,           \* "NONE", "DIFF", "TRUNC" or "SNAP"
    nlStage,            \* "WAITING", "EPOCH_UPDATED" (ZK4643 only) or "DONE"
    packets,            \* PROPOSALs received in sync before NEWLEADER
    syncCommitted       \* index into history \o packets committed by the sync

\* The network and the partitions.
VARIABLES
    msgs,               \* msgs[i][j]: the FIFO channel from i to j
    partitioned         \* set of <<i, j>>, i < j, whose link is cut

\* Ghost: history variables for the invariants and the bounds.
VARIABLES
    crashes, partitions, timeouts, snapshots, storageFaults,  \* fault counters
    restarted,          \* servers that restarted after a crash
    epochLeader,        \* set of <<epoch, leader>> (established leaders)
    proposalMsgsLog,    \* set of [source, epoch, txn]: every proposal
    committedLog,       \* the longest committed prefix any leader had
    violations          \* set of during-action flags (Violation in Rust)

serverVars == <<state, zabState, acceptedEpoch, currentEpoch, history, persisted,
                lastCommitted, lastSnapshot, staleLastProcessed, recovering>>
leaderVars == <<learners, connecting, connectingLive, electing, ackldRecv, ackldLive,
                forwarding, tempMaxEpoch, ackSets, sendCounter>>
followerVars == <<leaderOf, syncMode, nlStage, packets, syncCommitted>>
netVars == <<msgs, partitioned>>
ghostVars == <<crashes, partitions, timeouts, snapshots, storageFaults, restarted, epochLeader,
               proposalMsgsLog, committedLog, violations>>
vars == <<serverVars, leaderVars, followerVars, netVars, ghostVars>>

\* The current state as a record (Rust: the ModelState `s` a handler reads).
Cur == [state |-> state, zabState |-> zabState, acceptedEpoch |-> acceptedEpoch,
        currentEpoch |-> currentEpoch, history |-> history, persisted |-> persisted,
        lastCommitted |-> lastCommitted, lastSnapshot |-> lastSnapshot,
        staleLastProcessed |-> staleLastProcessed, recovering |-> recovering,
        learners |-> learners, connecting |-> connecting, connectingLive |-> connectingLive,
        electing |-> electing, ackldRecv |-> ackldRecv, ackldLive |-> ackldLive,
        forwarding |-> forwarding, tempMaxEpoch |-> tempMaxEpoch, ackSets |-> ackSets,
        sendCounter |-> sendCounter,
        leaderOf |-> leaderOf, syncMode |-> syncMode, nlStage |-> nlStage,
        packets |-> packets, syncCommitted |-> syncCommitted,
        msgs |-> msgs, partitioned |-> partitioned,
        crashes |-> crashes, partitions |-> partitions, timeouts |-> timeouts,
        snapshots |-> snapshots, storageFaults |-> storageFaults,
        restarted |-> restarted, epochLeader |-> epochLeader,
        proposalMsgsLog |-> proposalMsgsLog, committedLog |-> committedLog,
        violations |-> violations]

\* The successor state is the record t (Rust: `Some(t)`).
Apply(t) ==
    /\ state' = t.state /\ zabState' = t.zabState /\ acceptedEpoch' = t.acceptedEpoch
    /\ currentEpoch' = t.currentEpoch /\ history' = t.history /\ persisted' = t.persisted
    /\ lastCommitted' = t.lastCommitted /\ lastSnapshot' = t.lastSnapshot
    /\ staleLastProcessed' = t.staleLastProcessed /\ recovering' = t.recovering
    /\ learners' = t.learners /\ connecting' = t.connecting
    /\ connectingLive' = t.connectingLive /\ electing' = t.electing
    /\ ackldRecv' = t.ackldRecv /\ ackldLive' = t.ackldLive /\ forwarding' = t.forwarding
    /\ tempMaxEpoch' = t.tempMaxEpoch /\ ackSets' = t.ackSets /\ sendCounter' = t.sendCounter
    /\ leaderOf' = t.leaderOf /\ syncMode' = t.syncMode /\ nlStage' = t.nlStage
    /\ packets' = t.packets /\ syncCommitted' = t.syncCommitted
    /\ msgs' = t.msgs /\ partitioned' = t.partitioned
    /\ crashes' = t.crashes /\ partitions' = t.partitions /\ timeouts' = t.timeouts
    /\ snapshots' = t.snapshots /\ storageFaults' = t.storageFaults
    /\ restarted' = t.restarted /\ epochLeader' = t.epochLeader
    /\ proposalMsgsLog' = t.proposalMsgsLog /\ committedLog' = t.committedLog
    /\ violations' = t.violations

-----------------------------------------------------------------------------
(* Generic helpers.                                                        *)

Min(a, b) == IF a <= b THEN a ELSE b
Max(a, b) == IF a >= b THEN a ELSE b
Range(s) == {s[k] : k \in DOMAIN s}
\* a is a prefix of b (Rust `b.starts_with(a)`).
IsPrefix(a, b) == Len(a) <= Len(b) /\ SubSeq(b, 1, Len(a)) = a
\* The first position of x in s, 0 if absent (Rust `position` + 1).
Position(s, x) == IF x \in Range(s) THEN CHOOSE k \in 1..Len(s) : s[k] = x /\ \A m \in 1..(k - 1) : s[m] # x
                  ELSE 0
\* f with every point of S set to v.
Upd(f, S, v) == [k \in DOMAIN f |-> IF k \in S THEN v ELSE f[k]]
IsQuorum(S) == 2 * Cardinality(S) > N

\* Zxids: <<epoch, counter>>, ordered lexicographically.
ZeroZxid == <<0, 0>>
NullZxid == <<-1, -1>>      \* Electing.peer_last_zxid = None ("synced")
ZxidLt(a, b) == a[1] < b[1] \/ (a[1] = b[1] /\ a[2] < b[2])
ZxidLeq(a, b) == ZxidLt(a, b) \/ a = b
EpochStart(e) == <<e, 0>>
\* Zxid::next_in: the zxid after z for a leader whose current epoch is e.
NextIn(z, e) == IF z[1] = e THEN <<e, z[2] + 1>> ELSE <<e, 1>>
\* ZooKeeper's IsNextZxid (Rust next::is_next_zxid).
IsNextZxid(cur, nxt) == \/ nxt[2] = 1 /\ cur[1] < nxt[1]
                        \/ nxt[2] > 1 /\ cur[1] = nxt[1] /\ cur[2] + 1 = nxt[2]

\* Histories: sequences of transactions [zxid, value].
LastZxidOf(h) == IF h = <<>> THEN ZeroZxid ELSE h[Len(h)].zxid
ZxidAt(h, k) == IF k = 0 THEN ZeroZxid ELSE h[k].zxid
\* ServerVars::index_of: 0 for 0x0, -1 when absent.
IndexOf(h, z) == IF z = ZeroZxid THEN 0
                 ELSE IF \E k \in 1..Len(h) : h[k].zxid = z
                      THEN CHOOSE k \in 1..Len(h) : h[k].zxid = z /\ \A m \in 1..(k - 1) : h[m].zxid # z
                      ELSE -1
Delivered(i) == SubSeq(history[i], 1, lastCommitted[i])

-----------------------------------------------------------------------------
(* Messages (zab_spec::QuorumMessage; SNAP carries a history prefix).      *)

FollowerInfoMsg(e) == [mtype |-> "FOLLOWERINFO", epoch |-> e]
LeaderInfoMsg(e) == [mtype |-> "LEADERINFO", epoch |-> e]
\* c = -1: ZooKeeper's "already accepted this epoch" (Rust None).
AckEpochMsg(c, z) == [mtype |-> "ACKEPOCH", epoch |-> c, zxid |-> z]
DiffMsg(z) == [mtype |-> "DIFF", zxid |-> z]
TruncMsg(z) == [mtype |-> "TRUNC", zxid |-> z]
SnapMsg(z, snap) == [mtype |-> "SNAP", zxid |-> z, snapshot |-> snap]
ProposalMsg(txn) == [mtype |-> "PROPOSAL", txn |-> txn]
CommitMsg(z) == [mtype |-> "COMMIT", zxid |-> z]
NewLeaderMsg(z) == [mtype |-> "NEWLEADER", zxid |-> z]
AckLdMsg(z) == [mtype |-> "ACKLD", zxid |-> z]
UpToDateMsg == [mtype |-> "UPTODATE"]
AckMsg(z) == [mtype |-> "ACK", zxid |-> z]

\* The head of the channel j -> i has type mt.
HeadIs(j, i, mt) == msgs[j][i] # <<>> /\ Head(msgs[j][i]).mtype = mt

-----------------------------------------------------------------------------
(* ZNodes and sessions (model/src/znode.rs, model/src/workload.rs).        *)

RootPath == <<>>
\* A plain child of "/" (a requested path of the workload scripts).
P(name) == <<[name |-> name, seq |-> -1]>>
ParentOf(p) == SubSeq(p, 1, Len(p) - 1)

\* A transaction value (zab_spec::ZnodeTxn); sessions are positive, owner 0 = None.
CreateSessionTxn(s) == [type |-> "createSession", session |-> s]
CloseSessionTxn(s) == [type |-> "closeSession", session |-> s]
CreateTxn(p, owner, sequential) == [type |-> "create", path |-> p, owner |-> owner,
                                    sequential |-> sequential]
DeleteTxn(p) == [type |-> "delete", path |-> p]
SetDataTxn(p, v) == [type |-> "setData", path |-> p, version |-> v]
ErrorTxn(code) == [type |-> "error", code |-> code]

\* A ZNode (znode::Node); owner 0 = not ephemeral, maxSeq -1 = None.
NewNode(owner) == [version |-> 0, owner |-> owner, childCounter |-> 0, maxSeq |-> -1]
\* A tree (znode::Tree): nodes by path, open and closed sessions.
EmptyTree == [nodes |-> (RootPath :> NewNode(0)), open |-> {}, closed |-> {}]
HasChildren(tr, p) == \E q \in DOMAIN tr.nodes : q # RootPath /\ ParentOf(q) = p
Without(f, S) == [q \in DOMAIN f \ S |-> f[q]]

\* Tree::apply: [tree, anomalies], anomalies a set of invariant ids.
RECURSIVE ApplyTxn(_, _), ApplyAll(_, _)
ApplyTxn(tr, x) ==
    CASE x.type = "createSession" ->
            [tree |-> [tr EXCEPT !.open = @ \cup {x.session}], anoms |-> {}]
      [] x.type = "closeSession" ->
            LET owned == {q \in DOMAIN tr.nodes : tr.nodes[q].owner = x.session}
            IN [tree |-> [nodes |-> Without(tr.nodes, owned), open |-> tr.open \ {x.session},
                          closed |-> tr.closed \cup {x.session}],
                anoms |-> {}]
      [] x.type = "create" ->
            LET p == x.path
                pp == ParentOf(p)
            IN IF p \in DOMAIN tr.nodes \/ p = RootPath
               THEN [tree |-> tr, anoms |-> {"ZnodeTxnApplies"}]
               ELSE IF pp \notin DOMAIN tr.nodes
               THEN [tree |-> tr, anoms |-> {"ZnodeParentExists"}]
               ELSE LET par == tr.nodes[pp]
                        seq == p[Len(p)].seq
                        seqOk == seq # -1 /\ seq > par.maxSeq
                        a1 == IF par.owner # 0 THEN {"ZnodeEphemeralLeaf"} ELSE {}
                        a2 == IF x.sequential /\ ~seqOk THEN {"ZnodeSequentialMonotonic"} ELSE {}
                        a3 == IF x.owner # 0 /\ x.owner \notin tr.open
                              THEN {"SessionNoEphemeralForClosed"} ELSE {}
                        par2 == [par EXCEPT !.maxSeq = IF x.sequential /\ seqOk THEN seq ELSE @,
                                            !.childCounter = @ + 1]
                    IN [tree |-> [tr EXCEPT !.nodes = (p :> NewNode(x.owner)) @@ [@ EXCEPT ![pp] = par2]],
                        anoms |-> a1 \cup a2 \cup a3]
      [] x.type = "delete" ->
            IF x.path \notin DOMAIN tr.nodes \/ HasChildren(tr, x.path) \/ x.path = RootPath
            THEN [tree |-> tr, anoms |-> {"ZnodeTxnApplies"}]
            ELSE [tree |-> [tr EXCEPT !.nodes = Without(@, {x.path})], anoms |-> {}]
      [] x.type = "setData" ->
            IF x.path \notin DOMAIN tr.nodes
            THEN [tree |-> tr, anoms |-> {"ZnodeTxnApplies"}]
            ELSE [tree |-> [tr EXCEPT !.nodes[x.path].version = x.version],
                  anoms |-> IF x.version # tr.nodes[x.path].version + 1
                            THEN {"ZnodeVersionStep"} ELSE {}]
      [] x.type = "error" -> [tree |-> tr, anoms |-> {}]
      [] x.type = "multi" -> ApplyAll(tr, x.txns)
\* Applies a sequence of ZnodeTxn values in order.
ApplyAll(tr, xs) ==
    IF xs = <<>> THEN [tree |-> tr, anoms |-> {}]
    ELSE LET r1 == ApplyTxn(tr, Head(xs))
             r2 == ApplyAll(r1.tree, Tail(xs))
         IN [tree |-> r2.tree, anoms |-> r1.anoms \cup r2.anoms]

\* Tree::structure.
Structure(tr) ==
    UNION {LET nd == tr.nodes[p]
               pa == IF p = RootPath THEN {}
                     ELSE IF ParentOf(p) \notin DOMAIN tr.nodes THEN {"ZnodeParentExists"}
                     ELSE IF tr.nodes[ParentOf(p)].owner # 0 THEN {"ZnodeEphemeralLeaf"}
                     ELSE {}
               pe == IF nd.owner # 0 /\ nd.owner \notin tr.open
                     THEN {"SessionEphemeralCleanup"} ELSE {}
           IN pa \cup pe : p \in DOMAIN tr.nodes}

\* znode::replay of a delivered prefix: the tree and every anomaly.
Replay(h) == LET r == ApplyAll(EmptyTree, [k \in 1..Len(h) |-> h[k].value])
             IN [tree |-> r.tree, anoms |-> r.anoms \cup Structure(r.tree)]

\* The client scripts (workload::script); modes as ZooKeeper's CreateMode names.
SessionsScript ==
    << [op |-> "CreateSession", session |-> 1],
       [op |-> "Create", path |-> P("a"), mode |-> "EPHEMERAL", session |-> 1],
       [op |-> "SetData", path |-> P("a"), expectedVersion |-> 0],
       [op |-> "ExpireSession", session |-> 1],
       [op |-> "Create", path |-> P("q-"), mode |-> "PERSISTENT_SEQUENTIAL", session |-> 2],
       [op |-> "Create", path |-> P("q-"), mode |-> "PERSISTENT_SEQUENTIAL", session |-> 2],
       [op |-> "Delete", path |-> P("a"), expectedVersion |-> -1] >>
SequentialScript ==
    << [op |-> "Create", path |-> P("q-"), mode |-> "PERSISTENT_SEQUENTIAL", session |-> 2],
       [op |-> "Create", path |-> P("q-"), mode |-> "PERSISTENT_SEQUENTIAL", session |-> 2],
       [op |-> "CreateSession", session |-> 1],
       [op |-> "Create", path |-> P("e-"), mode |-> "EPHEMERAL_SEQUENTIAL", session |-> 1],
       [op |-> "ExpireSession", session |-> 1] >>
Script == IF Workload = "Sessions" THEN SessionsScript ELSE SequentialScript

IsEphemeralMode(m) == m \in {"EPHEMERAL", "EPHEMERAL_SEQUENTIAL"}
IsSequentialMode(m) == m \in {"PERSISTENT_SEQUENTIAL", "EPHEMERAL_SEQUENTIAL"}

\* workload::prepare: the transaction a leader whose speculative tree is tr proposes.
Prepare(op, tr) ==
    CASE op.op = "CreateSession" -> CreateSessionTxn(op.session)
      [] op.op = "ExpireSession" ->
            IF op.session \in tr.open THEN CloseSessionTxn(op.session)
            ELSE ErrorTxn("SessionExpired")
      [] op.op = "Create" ->
            LET eph == IsEphemeralMode(op.mode)
                sq == IsSequentialMode(op.mode)
                pp == ParentOf(op.path)
            IN IF eph /\ op.session \notin tr.open THEN ErrorTxn("SessionExpired")
               ELSE IF op.path = RootPath \/ pp \notin DOMAIN tr.nodes THEN ErrorTxn("NoNode")
               ELSE IF tr.nodes[pp].owner # 0 THEN ErrorTxn("NoChildrenForEphemerals")
               ELSE LET last == op.path[Len(op.path)]
                        name == IF sq
                                THEN Append(pp, [name |-> last.name,
                                                 seq |-> tr.nodes[pp].childCounter])
                                ELSE op.path
                    IN IF name \in DOMAIN tr.nodes THEN ErrorTxn("NodeExists")
                       ELSE CreateTxn(name, IF eph THEN op.session ELSE 0, sq)
      [] op.op = "SetData" ->
            IF op.path \notin DOMAIN tr.nodes THEN ErrorTxn("NoNode")
            ELSE IF op.expectedVersion # -1 /\ op.expectedVersion # tr.nodes[op.path].version
            THEN ErrorTxn("BadVersion")
            ELSE SetDataTxn(op.path, tr.nodes[op.path].version + 1)
      [] op.op = "Delete" ->
            IF op.path \notin DOMAIN tr.nodes THEN ErrorTxn("NoNode")
            ELSE IF op.expectedVersion # -1 /\ op.expectedVersion # tr.nodes[op.path].version
            THEN ErrorTxn("BadVersion")
            ELSE IF HasChildren(tr, op.path) THEN ErrorTxn("NotEmpty")
            ELSE DeleteTxn(op.path)

\* Workload::request: request k (0-based, over the whole run) at a leader with history h.
Request(k, h) == Prepare(Script[k + 1], Replay(h).tree)

-----------------------------------------------------------------------------
(* Shared helpers of the transition relation (model/src/next/mod.rs).      *)

\* The option values.
NoElecting == <<>>
ElectingRec(z, q) == <<[peerLastZxid |-> z, inQuorum |-> q]>>
NoElectings == [k \in Server |-> NoElecting]

Partitioned(i, j) == <<Min(i, j), Max(i, j)>> \in partitioned

\* ZabModel::reported_zxid: the last logged zxid, or under ZK2845 the stale one.
ReportedZxid(i) == IF staleLastProcessed[i] # -1 THEN ZxidAt(history[i], staleLastProcessed[i])
                   ELSE LastZxidOf(history[i])
\* ZabModel::vote: (currentEpoch, last zxid, id), compared lexicographically.
Vote(i) == <<currentEpoch[i], ReportedZxid(i), i>>
VoteLeq(a, b) == \/ a[1] < b[1]
                 \/ a[1] = b[1] /\ ZxidLt(a[2], b[2])
                 \/ a[1] = b[1] /\ a[2] = b[2] /\ a[3] <= b[3]

\* LeaderVars::epoch_acks: servers whose ACKEPOCH counts towards the quorum.
EpochAcks(el) == {k \in Server : el[k] # NoElecting /\ el[k][1].inQuorum}

\* ZabModel::handles: whether i has a handler for m from j in its current role.
Handles(i, j, m) ==
    LET isLearner == state[i] = "LEADING" /\ j \in learners[i]
        follows == state[i] = "FOLLOWING" /\ leaderOf[i] = j
    IN CASE m.mtype \in {"FOLLOWERINFO", "ACKEPOCH", "ACKLD", "ACK"} -> isLearner
         [] m.mtype \in {"LEADERINFO", "DIFF", "TRUNC", "SNAP", "NEWLEADER", "UPTODATE"} -> follows
         [] m.mtype \in {"PROPOSAL", "COMMIT"} ->
               follows /\ zabState[i] \in {"SYNCHRONIZATION", "BROADCAST"}

\* Record transformers: the Rust helpers that mutate the clone `t`.
Send(t, i, j, m) == [t EXCEPT !.msgs[i][j] = Append(@, m)]
SendSeq(t, i, j, ms) == [t EXCEPT !.msgs[i][j] = @ \o ms]
SendSet(t, i, S, m) == [t EXCEPT !.msgs[i] = [k \in Server |-> IF k \in S THEN Append(@[k], m)
                                                              ELSE @[k]]]
Pop(t, j, i) == [t EXCEPT !.msgs[j][i] = Tail(@)]
Flag(t, v) == [t EXCEPT !.violations = @ \cup {v}]
\* ModelState::clean for i and every member of S: both directions emptied.
CleanSet(t, i, S) ==
    [t EXCEPT !.msgs = [a \in Server |-> [b \in Server |->
                          IF (a = i /\ b \in S) \/ (b = i /\ a \in S) THEN <<>> ELSE @[a][b]]]]

\* `leader = None` for every server of S.
ResetLeader(t, S) ==
    [t EXCEPT !.learners = Upd(@, S, {}), !.connecting = Upd(@, S, {}),
              !.connectingLive = Upd(@, S, {}), !.electing = Upd(@, S, NoElectings),
              !.ackldRecv = Upd(@, S, {}), !.ackldLive = Upd(@, S, {}),
              !.forwarding = Upd(@, S, {}), !.tempMaxEpoch = Upd(@, S, 0),
              !.ackSets = Upd(@, S, <<>>), !.sendCounter = Upd(@, S, 0)]
\* `follower = None` for every server of S.
ResetFollower(t, S) ==
    [t EXCEPT !.leaderOf = Upd(@, S, 0), !.syncMode = Upd(@, S, "NONE"),
              !.nlStage = Upd(@, S, "WAITING"), !.packets = Upd(@, S, <<>>),
              !.syncCommitted = Upd(@, S, 0)]

\* ZabModel::go_looking, for every server of S (they are independent): LOOKING
\* without crashing; the log thread drains (persisted := Len(history)); under ZK2845
\* the stale last applied index is kept.
GoLooking(t, S) ==
    LET t1 == ResetFollower(ResetLeader(t, S), S)
    IN [t1 EXCEPT
          !.state = Upd(@, S, "LOOKING"),
          !.zabState = Upd(@, S, "ELECTION"),
          !.persisted = [k \in Server |-> IF k \in S THEN Len(t.history[k]) ELSE @[k]],
          !.staleLastProcessed =
              [k \in Server |-> IF k \in S /\ Bug = "ZK2845" /\ @[k] = -1
                                   /\ t.lastCommitted[k] < Len(t.history[k])
                                THEN t.lastCommitted[k] ELSE @[k]]]

\* ZabModel::leader_shutdown (LeaderShutdown): the leader's learners go LOOKING and
\* their connections close; with crashed, the leader itself is left to NodeCrash.
LeaderShutdown(t, i, crashed) ==
    LET L == t.learners[i] \ {i}
        t1 == CleanSet(GoLooking(t, L), i, L)
    IN IF crashed THEN ResetLeader(t1, {i}) ELSE GoLooking(t1, {i})

\* ZabModel::remove_learner (RemoveLearner): leader i drops j; steps down without a
\* quorum of learners. Nothing happens if i does not lead.
RemoveLearner(t, i, j) ==
    IF t.state[i] # "LEADING" THEN t
    ELSE LET t1 == [t EXCEPT
                      !.learners[i] = @ \ {j}, !.forwarding[i] = @ \ {j},
                      !.connectingLive[i] = @ \ {j}, !.ackldLive[i] = @ \ {j},
                      !.electing[i][j] = IF @ = NoElecting THEN @
                                         ELSE ElectingRec(NullZxid, @[1].inQuorum)]
             t2 == CleanSet(t1, i, {j})
         IN IF IsQuorum(t2.learners[i]) THEN t2 ELSE LeaderShutdown(t2, i, FALSE)

\* ZabModel::follower_leaves: follower i of j goes LOOKING and j removes it.
FollowerLeaves(t, i, j) == RemoveLearner(GoLooking(t, {i}), j, i)

\* ZabModel::update_committed_log: the committedLog ghost follows leader i's
\* committed prefix when that prefix extends it.
UpdateCommittedLog(t, i) ==
    LET c == SubSeq(t.history[i], 1, t.lastCommitted[i])
    IN IF Len(c) > Len(t.committedLog) /\ IsPrefix(t.committedLog, c)
       THEN [t EXCEPT !.committedLog = c] ELSE t

\* ZabModel::recipients: the broadcast set for PROPOSAL or COMMIT.
Recipients(t, i, commit) ==
    LET narrowed == IF commit THEN Bug = "PaperCommitldZxid" ELSE Bug = "PaperProposeRecipients"
    IN (IF narrowed THEN t.forwarding[i] \cap t.ackldLive[i] ELSE t.forwarding[i]) \ {i}

\* ZabModel::leader_try_to_commit (Leader.tryToCommit) for history item k.
TryToCommit(t, i, k) ==
    IF t.state[i] # "LEADING" \/ k # t.lastCommitted[i] + 1 \/ t.ackSets[i] = <<>>
       \/ ~IsQuorum(Head(t.ackSets[i]))
    THEN t
    ELSE LET t1 == UpdateCommittedLog([t EXCEPT !.ackSets[i] = Tail(@),
                                                !.lastCommitted[i] = @ + 1], i)
         IN SendSet(t1, i, Recipients(t1, i, TRUE), CommitMsg(t.history[i][k].zxid))

-----------------------------------------------------------------------------
(* Initial states.                                                         *)

\* Every server LOOKING with an empty log (ModelState::initial).
Init ==
    /\ state = [i \in Server |-> "LOOKING"]
    /\ zabState = [i \in Server |-> "ELECTION"]
    /\ acceptedEpoch = [i \in Server |-> 0]
    /\ currentEpoch = [i \in Server |-> 0]
    /\ history = [i \in Server |-> <<>>]
    /\ persisted = [i \in Server |-> 0]
    /\ lastCommitted = [i \in Server |-> 0]
    /\ lastSnapshot = [i \in Server |-> 0]
    /\ staleLastProcessed = [i \in Server |-> -1]
    /\ recovering = [i \in Server |-> FALSE]
    /\ learners = [i \in Server |-> {}]
    /\ connecting = [i \in Server |-> {}]
    /\ connectingLive = [i \in Server |-> {}]
    /\ electing = [i \in Server |-> NoElectings]
    /\ ackldRecv = [i \in Server |-> {}]
    /\ ackldLive = [i \in Server |-> {}]
    /\ forwarding = [i \in Server |-> {}]
    /\ tempMaxEpoch = [i \in Server |-> 0]
    /\ ackSets = [i \in Server |-> <<>>]
    /\ sendCounter = [i \in Server |-> 0]
    /\ leaderOf = [i \in Server |-> 0]
    /\ syncMode = [i \in Server |-> "NONE"]
    /\ nlStage = [i \in Server |-> "WAITING"]
    /\ packets = [i \in Server |-> <<>>]
    /\ syncCommitted = [i \in Server |-> 0]
    /\ msgs = [i \in Server |-> [j \in Server |-> <<>>]]
    /\ partitioned = {}
    /\ crashes = 0 /\ partitions = 0 /\ timeouts = 0 /\ snapshots = 0 /\ storageFaults = 0
    /\ restarted = {}
    /\ epochLeader = {}
    /\ proposalMsgsLog = {}
    /\ committedLog = <<>>
    /\ violations = {}

\* --init epoch1 (ZabModel::epoch1_state, Remix's SetInitState): server N leads epoch 1
\* in BROADCAST; request 0 is committed everywhere; request 1 is logged and
\* self-acknowledged by the leader, its PROPOSAL in flight to every follower.
InitEpoch1 ==
    LET L == N
        t1 == [zxid |-> <<1, 1>>, value |-> Request(0, <<>>)]
        t2 == [zxid |-> <<1, 2>>, value |-> Request(1, <<t1>>)]
        isL(i) == i = L
    IN
    /\ Assert(MaxTxns >= 2, "InitEpoch1 needs MaxTxns >= 2 (--init epoch1 needs --txns >= 2)")
    /\ state = [i \in Server |-> IF isL(i) THEN "LEADING" ELSE "FOLLOWING"]
    /\ zabState = [i \in Server |-> "BROADCAST"]
    /\ acceptedEpoch = [i \in Server |-> 1]
    /\ currentEpoch = [i \in Server |-> 1]
    /\ history = [i \in Server |-> IF isL(i) THEN <<t1, t2>> ELSE <<t1>>]
    /\ persisted = [i \in Server |-> IF isL(i) THEN 2 ELSE 1]
    /\ lastCommitted = [i \in Server |-> 1]
    /\ lastSnapshot = [i \in Server |-> 0]
    /\ staleLastProcessed = [i \in Server |-> -1]
    /\ recovering = [i \in Server |-> FALSE]
    /\ learners = [i \in Server |-> IF isL(i) THEN Server ELSE {}]
    /\ connecting = [i \in Server |-> IF isL(i) THEN Server ELSE {}]
    /\ connectingLive = [i \in Server |-> IF isL(i) THEN Server ELSE {}]
    /\ electing = [i \in Server |-> IF isL(i) THEN [k \in Server |-> ElectingRec(NullZxid, TRUE)]
                                    ELSE NoElectings]
    /\ ackldRecv = [i \in Server |-> IF isL(i) THEN Server ELSE {}]
    /\ ackldLive = [i \in Server |-> IF isL(i) THEN Server ELSE {}]
    /\ forwarding = [i \in Server |-> IF isL(i) THEN Server \ {L} ELSE {}]
    /\ tempMaxEpoch = [i \in Server |-> IF isL(i) THEN 1 ELSE 0]
    /\ ackSets = [i \in Server |-> IF isL(i) THEN <<{L}>> ELSE <<>>]
    /\ sendCounter = [i \in Server |-> IF isL(i) /\ Bug = "PaperRedundantPropose" THEN 2 ELSE 0]
    /\ leaderOf = [i \in Server |-> IF isL(i) THEN 0 ELSE L]
    /\ syncMode = [i \in Server |-> "NONE"]
    /\ nlStage = [i \in Server |-> IF isL(i) THEN "WAITING" ELSE "DONE"]
    /\ packets = [i \in Server |-> <<>>]
    /\ syncCommitted = [i \in Server |-> 0]
    /\ msgs = [i \in Server |-> [j \in Server |->
                 IF isL(i) /\ ~isL(j) THEN <<ProposalMsg(t2)>> ELSE <<>>]]
    /\ partitioned = {}
    /\ crashes = 0 /\ partitions = 0 /\ timeouts = 0 /\ snapshots = 0 /\ storageFaults = 0
    /\ restarted = {}
    /\ epochLeader = {<<1, L>>}
    /\ proposalMsgsLog = {[source |-> L, epoch |-> 1, txn |-> t1],
                          [source |-> L, epoch |-> 1, txn |-> t2]}
    /\ committedLog = <<t1>>
    /\ violations = {}

-----------------------------------------------------------------------------
(* Election (PROTOCOL.md §3; model/src/next/election.rs).                  *)

\* A LOOKING server wins with the votes of a quorum of reachable LOOKING servers
\* whose votes are at most its own; recovering servers neither win nor vote.
ElectLeader(i) ==
    /\ state[i] = "LOOKING"
    /\ ~recovering[i]
    /\ IsQuorum({j \in Server : /\ state[j] = "LOOKING"
                                /\ ~recovering[j]
                                /\ j = i \/ ~Partitioned(i, j)
                                /\ VoteLeq(Vote(j), Vote(i))})
    /\ Apply([Cur EXCEPT
                !.state[i] = "LEADING", !.zabState[i] = "DISCOVERY",
                !.learners[i] = {i}, !.connecting[i] = {i}, !.connectingLive[i] = {i},
                !.electing[i] = [k \in Server |-> IF k = i THEN ElectingRec(NullZxid, TRUE)
                                                  ELSE NoElecting],
                !.ackldRecv[i] = {i}, !.ackldLive[i] = {i}, !.forwarding[i] = {},
                !.tempMaxEpoch[i] = acceptedEpoch[i] + 1,
                !.ackSets[i] = <<>>, !.sendCounter[i] = 0])

\* FLE decides that i follows j, then ConnectAndFollowerSendFOLLOWERINFO. No vote
\* condition: FLE settles on j from a quorum's notifications of one round (recvset) or
\* from a quorum reporting FOLLOWING/LEADING j (outofelection, checkLeader), and those
\* notifications may be arbitrarily old; every LEADING j was elected by a quorum, and
\* only the connection (accepted while j leads) is checked now.
FollowLeader(i, j) ==
    /\ i # j
    /\ state[i] = "LOOKING"
    /\ state[j] = "LEADING"
    /\ ~Partitioned(i, j)
    /\ Apply(Send([Cur EXCEPT
                     !.state[i] = "FOLLOWING", !.zabState[i] = "DISCOVERY",
                     !.leaderOf[i] = j, !.syncMode[i] = "NONE", !.nlStage[i] = "WAITING",
                     !.packets[i] = <<>>, !.syncCommitted[i] = 0,
                     !.learners[j] = @ \cup {i}],
                  i, j, FollowerInfoMsg(acceptedEpoch[i])))

\* initLimit / syncLimit: a leader not yet in BROADCAST gives up.
LeaderTimeout(i) ==
    /\ state[i] = "LEADING"
    /\ zabState[i] \in {"DISCOVERY", "SYNCHRONIZATION"}
    /\ timeouts < MaxTimeouts
    /\ Apply(LeaderShutdown([Cur EXCEPT !.timeouts = @ + 1], i, FALSE))

-----------------------------------------------------------------------------
(* Discovery (PROTOCOL.md §4; model/src/next/discovery.rs).                *)

LeaderProcessFOLLOWERINFO(i, j) ==
    /\ HeadIs(j, i, "FOLLOWERINFO")
    /\ state[i] = "LEADING"
    /\ j \in learners[i]
    /\ LET e == Head(msgs[j][i]).epoch
           waiting == ~(i \in connecting[i] /\ IsQuorum(connecting[i]))
           t == Pop(Cur, j, i)
       IN IF waiting
          THEN LET tmp == IF e >= tempMaxEpoch[i] THEN e + 1 ELSE tempMaxEpoch[i]
                   conn == connecting[i] \cup {j}
                   live == connectingLive[i] \cup {j}
                   decided == i \in conn /\ IsQuorum(conn)
                   t1 == IF zabState[i] # "DISCOVERY" THEN Flag(t, "stateInconsistent") ELSE t
                   t2 == [t1 EXCEPT !.tempMaxEpoch[i] = tmp, !.connecting[i] = conn,
                                    !.connectingLive[i] = live]
               IN /\ ~(decided /\ tmp > MaxEpoch)     \* the epoch bound
                  /\ Apply(IF decided
                           THEN SendSet([t2 EXCEPT !.acceptedEpoch[i] = tmp], i, live \ {i},
                                        LeaderInfoMsg(tmp))
                           ELSE t2)
          ELSE Apply(Send(t, i, j, LeaderInfoMsg(acceptedEpoch[i])))

FollowerProcessLEADERINFO(i, j) ==
    /\ HeadIs(j, i, "LEADERINFO")
    /\ state[i] = "FOLLOWING"
    /\ leaderOf[i] = j
    /\ LET e == Head(msgs[j][i]).epoch
           t == Pop(Cur, j, i)
       IN IF e < acceptedEpoch[i]
          THEN Apply(FollowerLeaves(Cur, i, j))
          ELSE IF zabState[i] # "DISCOVERY"
          THEN Apply(Flag(t, "stateInconsistent"))
          ELSE Apply(Send([t EXCEPT !.acceptedEpoch[i] = e, !.zabState[i] = "SYNCHRONIZATION"],
                          i, j, AckEpochMsg(IF e > acceptedEpoch[i] THEN currentEpoch[i] ELSE -1,
                                            ReportedZxid(i))))

LeaderProcessACKEPOCH(i, j) ==
    /\ HeadIs(j, i, "ACKEPOCH")
    /\ state[i] = "LEADING"
    /\ j \in learners[i]
    /\ LET m == Head(msgs[j][i])
           finished(S) == i \in S /\ IsQuorum(S)
           oldInQuorum == electing[i][j] # NoElecting /\ electing[i][j][1].inQuorum
           t == Pop(Cur, j, i)
           Record(r, q) == [r EXCEPT !.electing[i][j] = ElectingRec(m.zxid, q \/ oldInQuorum)]
           t1 == IF zabState[i] # "DISCOVERY" THEN Flag(t, "stateInconsistent") ELSE t
           t2 == Record(t1, TRUE)
       IN IF finished(EpochAcks(electing[i]))
          THEN Apply(Record(t, FALSE))
          ELSE IF m.epoch = -1 \/ recovering[j]    \* a recovering follower is not counted
          THEN Apply(Record(t1, FALSE))
          ELSE IF \/ m.epoch > currentEpoch[i]
                  \/ m.epoch = currentEpoch[i] /\ ZxidLt(ReportedZxid(i), m.zxid)
          THEN Apply(LeaderShutdown(Cur, i, FALSE))    \* from s: the pop is not kept
          ELSE IF finished(EpochAcks(t2.electing[i]))
          THEN Apply([t2 EXCEPT !.currentEpoch[i] = acceptedEpoch[i],
                                !.zabState[i] = "SYNCHRONIZATION",
                                !.epochLeader = @ \cup {<<acceptedEpoch[i], i>>}])
          ELSE Apply(t2)

-----------------------------------------------------------------------------
(* Synchronization (PROTOCOL.md §5; model/src/next/sync.rs).               *)

ZxidMin(a, b) == IF ZxidLeq(a, b) THEN a ELSE b

\* zab_spec::sync::plan_sync (PROTOCOL.md §5.1), stated over zxids like the Rust rule
\* that the model and the server share: the leader's log is `start` (its snapshot
\* point) followed by `log` (a sequence of ascending zxids); `committed` is its commit
\* point, `delivered` the prefix it applied, `peer` the follower's last zxid.
\* Result: [mode, base, committed], base and committed as zxids.
PlanSync(start, log, committed, delivered, peer) ==
    IF peer = start \/ peer \in Range(log)
    THEN [mode |-> "DIFF", base |-> peer, committed |-> ZxidMin(peer, committed)]
    ELSE IF ZxidLt(peer, start)
    THEN [mode |-> "SNAP", base |-> delivered, committed |-> delivered]
    ELSE LET below == IF \E k \in 1..Len(log) : ZxidLt(log[k], peer)
                      THEN log[CHOOSE k \in 1..Len(log) : ZxidLt(log[k], peer)
                                          /\ \A m \in (k + 1)..Len(log) : ~ZxidLt(log[m], peer)]
                      ELSE start
             t == ZxidMin(below, committed)
         IN [mode |-> "TRUNC", base |-> t, committed |-> t]

\* PROPOSAL for every item after base, each followed by COMMIT if at or before c.
RECURSIVE SyncStream(_, _, _)
SyncStream(h, m, c) ==
    IF m > Len(h) THEN <<>>
    ELSE <<ProposalMsg(h[m])>> \o (IF m <= c THEN <<CommitMsg(h[m].zxid)>> ELSE <<>>)
         \o SyncStream(h, m + 1, c)

LeaderSyncFollower(i, j) ==
    /\ i # j
    /\ state[i] = "LEADING"
    /\ LET acks == EpochAcks(electing[i]) IN i \in acks /\ IsQuorum(acks)
    /\ j \in learners[i]
    /\ electing[i][j] # NoElecting
    /\ electing[i][j][1].peerLastZxid # NullZxid
    /\ LET h == history[i]
           committed == IF zabState[i] = "BROADCAST" THEN lastCommitted[i] ELSE Len(h)
           start == lastSnapshot[i]
           plan == PlanSync(ZxidAt(h, start),
                            [k \in 1..(Len(h) - start) |-> h[start + k].zxid],
                            ZxidAt(h, committed), ZxidAt(h, lastCommitted[i]),
                            electing[i][j][1].peerLastZxid)
           base == IndexOf(h, plan.base)    \* back from zxids to positions
           syncMsg == CASE plan.mode = "DIFF" -> DiffMsg(plan.committed)
                        [] plan.mode = "TRUNC" -> TruncMsg(plan.base)
                        [] plan.mode = "SNAP" -> SnapMsg(plan.base, SubSeq(h, 1, base))
           stream == <<syncMsg>> \o SyncStream(h, base + 1, committed)
                     \o <<NewLeaderMsg(EpochStart(acceptedEpoch[i]))>>
       IN Apply(SendSeq([Cur EXCEPT !.forwarding[i] = @ \cup {j},
                                    !.electing[i][j] = ElectingRec(NullZxid, @[1].inQuorum)],
                        i, j, stream))

\* Following j, and not in the middle of NEWLEADER (ZK4643 only).
SyncingFollowerOf(i, j) ==
    state[i] = "FOLLOWING" /\ leaderOf[i] = j /\ nlStage[i] # "EPOCH_UPDATED"

\* The transactions of `removed` that belong to committedLog and are not in `kept`.
LosesCommitted(removed, kept) ==
    \E x \in Range(removed) : x \in Range(committedLog) /\ x \notin Range(kept)

FollowerProcessSyncMessage(i, j) ==
    /\ msgs[j][i] # <<>>
    /\ Head(msgs[j][i]).mtype \in {"DIFF", "TRUNC", "SNAP"}
    /\ SyncingFollowerOf(i, j)
    /\ LET m == Head(msgs[j][i])
           t == Pop(Cur, j, i)
           h == history[i]
           k == IndexOf(h, m.zxid)
           \* The common ending: the sync mode and the sync point.
           Done(r, mode, base) == [r EXCEPT !.syncMode[i] = mode, !.syncCommitted[i] = base,
                                    !.staleLastProcessed[i] = IF mode = "TRUNC" THEN -1 ELSE @]
       IN IF zabState[i] # "SYNCHRONIZATION"
          THEN Apply(Flag(t, "stateInconsistent"))
          ELSE CASE m.mtype = "DIFF" ->
                      IF k = -1 THEN Apply(Flag(t, "proposalInconsistent"))
                      ELSE Apply(Done(t, "DIFF", k))
                 [] m.mtype = "TRUNC" ->
                      IF k = -1 \/ k < lastCommitted[i]
                      THEN Apply(Flag(t, "proposalInconsistent"))
                      ELSE LET t1 == [t EXCEPT !.history[i] = SubSeq(h, 1, k),
                                               !.persisted[i] = k,
                                               !.lastSnapshot[i] = Min(@, k)]
                               t2 == IF LosesCommitted(SubSeq(h, k + 1, Len(h)), SubSeq(h, 1, k))
                                     THEN Flag(t1, "committedLogTruncated") ELSE t1
                           IN Apply(Done(t2, "TRUNC", k))
                 [] m.mtype = "SNAP" ->
                      LET len == Len(m.snapshot)
                          t1 == [t EXCEPT !.history[i] = m.snapshot, !.persisted[i] = len,
                                          !.lastCommitted[i] = len, !.lastSnapshot[i] = len,
                                          !.staleLastProcessed[i] = -1]
                          t2 == IF LosesCommitted(h, m.snapshot)
                                THEN Flag(t1, "committedLogTruncated") ELSE t1
                      IN Apply(Done(t2, "SNAP", len))

FollowerProcessPROPOSALInSync(i, j) ==
    /\ HeadIs(j, i, "PROPOSAL")
    /\ SyncingFollowerOf(i, j)
    /\ zabState[i] = "SYNCHRONIZATION"
    /\ LET txn == Head(msgs[j][i]).txn
           t == Pop(Cur, j, i)
           last == IF packets[i] # <<>> THEN packets[i][Len(packets[i])].zxid
                   ELSE LastZxidOf(history[i])
       IN IF ~IsNextZxid(last, txn.zxid)
          THEN Apply(Flag(t, "proposalInconsistent"))
          ELSE IF nlStage[i] = "WAITING"
          THEN Apply([t EXCEPT !.packets[i] = Append(@, txn)])
          ELSE Apply([t EXCEPT !.history[i] = Append(@, txn)])

FollowerProcessCOMMITInSync(i, j) ==
    /\ HeadIs(j, i, "COMMIT")
    /\ SyncingFollowerOf(i, j)
    /\ zabState[i] = "SYNCHRONIZATION"
    /\ LET z == Head(msgs[j][i]).zxid
           t == Pop(Cur, j, i)
           all == history[i] \o packets[i]
           next == syncCommitted[i]
           dropped == Bug = "ZK4394" /\ nlStage[i] = "DONE"
       IN IF next < Len(all) /\ all[next + 1].zxid = z /\ ~dropped
          THEN Apply([t EXCEPT !.syncCommitted[i] = @ + 1])
          ELSE Apply(Flag(t, "commitInconsistent"))

\* sync.rs log_sync_packets_and_ack: log the packets durably, then ACK NEWLEADER,
\* then ACK every synced item after the sync point.
LogSyncPacketsAndAck(t, i, j, z) ==
    LET h == t.history[i] \o t.packets[i]
        from == t.syncCommitted[i]
        acks == [k \in 1..(Len(h) - from) |-> AckMsg(h[from + k].zxid)]
    IN SendSeq([t EXCEPT !.nlStage[i] = "DONE", !.packets[i] = <<>>, !.history[i] = h,
                         !.persisted[i] = Len(h)],
               i, j, <<AckLdMsg(z)>> \o acks)

FollowerProcessNEWLEADER(i, j) ==
    /\ HeadIs(j, i, "NEWLEADER")
    /\ SyncingFollowerOf(i, j)
    /\ nlStage[i] = "WAITING"
    /\ LET z == Head(msgs[j][i]).zxid
           t == Pop(Cur, j, i)
           t1 == [t EXCEPT !.currentEpoch[i] = acceptedEpoch[i]]
       IN IF zabState[i] # "SYNCHRONIZATION"
          THEN Apply(Flag(t, "stateInconsistent"))
          ELSE CASE Bug = "ZK4643" -> Apply([t1 EXCEPT !.nlStage[i] = "EPOCH_UPDATED"])
                 [] Bug = "ZK4646" ->
                      Apply(Send([t1 EXCEPT !.nlStage[i] = "DONE", !.packets[i] = <<>>,
                                            !.history[i] = @ \o packets[i]],
                                 i, j, AckLdMsg(z)))
                 [] OTHER -> Apply(LogSyncPacketsAndAck(t1, i, j, z))

\* ZK4643 only: the second half of NEWLEADER.
FollowerProcessNEWLEADERAfterCurrentEpochUpdated(i) ==
    /\ state[i] = "FOLLOWING"
    /\ nlStage[i] = "EPOCH_UPDATED"
    /\ Apply(LogSyncPacketsAndAck(Cur, i, leaderOf[i], EpochStart(acceptedEpoch[i])))

LeaderProcessACKLD(i, j) ==
    /\ HeadIs(j, i, "ACKLD")
    /\ state[i] = "LEADING"
    /\ j \in learners[i]
    /\ LET z == Head(msgs[j][i]).zxid
           t == Pop(Cur, j, i)
           formed == i \in ackldRecv[i] /\ IsQuorum(ackldRecv[i])
           recv == ackldRecv[i] \cup {j}
           live == ackldLive[i] \cup {j}
           t1 == [t EXCEPT !.ackldRecv[i] = recv, !.ackldLive[i] = live]
           \* a recovering follower gets UPTODATE but does not count towards establishment
           recvC == IF recovering[j] THEN ackldRecv[i] ELSE recv
           t3 == [t EXCEPT !.ackldRecv[i] = recvC, !.ackldLive[i] = live]
       IN IF formed
          THEN Apply(Send(IF Bug \in {"PaperProposeRecipients", "PaperCommitldZxid"} THEN t1 ELSE t,
                          i, j, UpToDateMsg))
          ELSE IF z # EpochStart(acceptedEpoch[i])
          THEN Apply(Flag(t, "ackInconsistent"))
          ELSE IF i \in recvC /\ IsQuorum(recvC)
          THEN LET t2 == [t3 EXCEPT !.zabState[i] = "BROADCAST",
                                    !.lastCommitted[i] = Len(history[i]),
                                    !.staleLastProcessed[i] = -1,
                                    !.ackSets[i] = <<>>,
                                    !.sendCounter[i] = IF Bug = "PaperRedundantPropose"
                                                       THEN Len(history[i]) ELSE 0]
               IN Apply(SendSet(UpdateCommittedLog(t2, i), i, live \ {i}, UpToDateMsg))
          ELSE Apply(t3)

FollowerProcessUPTODATE(i, j) ==
    /\ HeadIs(j, i, "UPTODATE")
    /\ SyncingFollowerOf(i, j)
    /\ LET t == Pop(Cur, j, i)
           t1 == IF syncCommitted[i] < lastCommitted[i] THEN Flag(t, "commitInconsistent") ELSE t
       IN IF zabState[i] # "SYNCHRONIZATION" \/ nlStage[i] # "DONE"
          THEN Apply(Flag(t, "stateInconsistent"))
          ELSE Apply([t1 EXCEPT !.zabState[i] = "BROADCAST", !.staleLastProcessed[i] = -1,
                                !.recovering[i] = FALSE,
                                !.lastCommitted[i] = syncCommitted[i],
                                !.syncMode[i] = "NONE", !.syncCommitted[i] = 0])

-----------------------------------------------------------------------------
(* Broadcast (PROTOCOL.md §6; model/src/next/broadcast.rs).                *)

\* A client request (the next op of the script) becomes a proposal.
LeaderProcessRequest(i) ==
    /\ state[i] = "LEADING"
    /\ zabState[i] = "BROADCAST"
    /\ Cardinality(proposalMsgsLog) < MaxTxns
    /\ Cardinality(proposalMsgsLog) < Len(Script)
    /\ LET txn == [zxid |-> NextIn(LastZxidOf(history[i]), currentEpoch[i]),
                   value |-> Request(Cardinality(proposalMsgsLog), history[i])]
           t == [Cur EXCEPT
                   !.proposalMsgsLog = @ \cup {[source |-> i, epoch |-> acceptedEpoch[i], txn |-> txn]},
                   !.history[i] = Append(@, txn),
                   !.ackSets[i] = Append(@, {})]
       IN Apply(IF Bug # "PaperRedundantPropose"
                THEN SendSet(t, i, Recipients(t, i, FALSE), ProposalMsg(txn))
                ELSE t)

\* PaperRedundantPropose only: the next logged-but-unsent proposal goes out.
LeaderBroadcastPROPOSAL(i) ==
    /\ Bug = "PaperRedundantPropose"
    /\ zabState[i] = "BROADCAST"
    /\ state[i] = "LEADING"
    /\ sendCounter[i] < Len(history[i])
    /\ LET t == [Cur EXCEPT !.sendCounter[i] = @ + 1]
       IN Apply(SendSet(t, i, Recipients(t, i, FALSE), ProposalMsg(history[i][sendCounter[i] + 1])))

\* The log thread makes the next item durable, then acknowledges it.
SyncProcessorLogRequest(i) ==
    /\ persisted[i] < Len(history[i])
    /\ LET k == persisted[i] + 1
           lc == lastCommitted[i]
           t == [Cur EXCEPT !.persisted[i] = k]
       IN CASE state[i] = "LEADING" /\ zabState[i] = "BROADCAST" ->
                 IF k > lc
                 THEN Apply(TryToCommit([t EXCEPT !.ackSets[i][k - lc] = @ \cup {i}], i, k))
                 ELSE Apply(t)
            [] state[i] = "FOLLOWING" /\ nlStage[i] = "DONE" ->
                 Apply(Send(t, i, leaderOf[i], AckMsg(history[i][k].zxid)))
            [] OTHER -> Apply(t)

FollowerProcessPROPOSAL(i, j) ==
    /\ HeadIs(j, i, "PROPOSAL")
    /\ state[i] = "FOLLOWING"
    /\ leaderOf[i] = j
    /\ zabState[i] = "BROADCAST"
    /\ LET txn == Head(msgs[j][i]).txn
           t == Pop(Cur, j, i)
       IN IF IsNextZxid(LastZxidOf(history[i]), txn.zxid)
          THEN Apply([t EXCEPT !.history[i] = Append(@, txn)])
          ELSE Apply(Flag(t, "proposalInconsistent"))

LeaderProcessACK(i, j) ==
    /\ HeadIs(j, i, "ACK")
    /\ state[i] = "LEADING"
    /\ j \in learners[i]
    /\ LET z == Head(msgs[j][i]).zxid
           t == Pop(Cur, j, i)
           committed == IF zabState[i] = "BROADCAST" THEN lastCommitted[i] ELSE Len(history[i])
           k == IndexOf(history[i], z)
       IN IF ZxidLeq(z, ZxidAt(history[i], committed)) \/ recovering[j]
          THEN Apply(t)
          ELSE IF k > committed
          THEN Apply(TryToCommit([t EXCEPT !.ackSets[i][k - committed] = @ \cup {j}], i, k))
          ELSE Apply(Flag(t, "ackInconsistent"))

FollowerProcessCOMMIT(i, j) ==
    /\ HeadIs(j, i, "COMMIT")
    /\ state[i] = "FOLLOWING"
    /\ leaderOf[i] = j
    /\ zabState[i] = "BROADCAST"
    /\ LET z == Head(msgs[j][i]).zxid
           t == Pop(Cur, j, i)
           next == lastCommitted[i]
       IN IF next < Len(history[i]) /\ history[i][next + 1].zxid = z
          THEN Apply([t EXCEPT !.lastCommitted[i] = @ + 1])
          ELSE Apply(Flag(t, "commitInconsistent"))

\* A snapshot of history[1..k], committed and durable, becomes the recovery point. It is
\* written in the background, in any role and phase, so k is any point after the previous
\* snapshot (Rust: one Action::TakeSnapshot { i, k } per k).
TakeSnapshot(i, k) ==
    /\ lastSnapshot[i] < k
    /\ k <= Min(lastCommitted[i], persisted[i])
    /\ snapshots < MaxSnapshots
    /\ Apply([Cur EXCEPT !.snapshots = @ + 1, !.lastSnapshot[i] = k])

-----------------------------------------------------------------------------
(* The environment (PROTOCOL.md §7; model/src/next/faults.rs).             *)

PartitionStart(i, j) ==
    /\ i < j
    /\ ~Partitioned(i, j)
    /\ partitions < MaxPartitions
    /\ LET t == [Cur EXCEPT !.partitions = @ + 1, !.partitioned = @ \cup {<<i, j>>}]
       IN Apply(IF state[i] = "FOLLOWING" /\ leaderOf[i] = j THEN FollowerLeaves(t, i, j)
                ELSE IF state[j] = "FOLLOWING" /\ leaderOf[j] = i THEN FollowerLeaves(t, j, i)
                ELSE t)

PartitionRecover(i, j) ==
    /\ i < j
    /\ Partitioned(i, j)
    /\ Apply([Cur EXCEPT !.partitioned = @ \ {<<i, j>>}])

\* ZabModel::crash_restart: i's connections break, its volatile state is lost, and it
\* restarts at once, LOOKING, with its durable state (shared by NodeCrash and the
\* storage faults).
CrashRestart(t0, i) ==
    LET t == [t0 EXCEPT !.restarted = @ \cup {i}]
        t1 == CASE state[i] = "LEADING" -> LeaderShutdown(t, i, TRUE)
                [] state[i] = "FOLLOWING" -> RemoveLearner(t, leaderOf[i], i)
                [] OTHER -> t
        t2 == ResetFollower(ResetLeader(CleanSet(t1, i, Server), {i}), {i})
    IN [t2 EXCEPT !.state[i] = "LOOKING", !.zabState[i] = "ELECTION",
                  !.history[i] = SubSeq(@, 1, t2.persisted[i]),
                  !.lastCommitted[i] = t2.lastSnapshot[i],
                  !.staleLastProcessed[i] = -1]

\* The server crashes and restarts at once, LOOKING; durable state survives.
NodeCrash(i) ==
    /\ crashes < MaxCrashes
    /\ Apply(CrashRestart([Cur EXCEPT !.crashes = @ + 1], i))

\* Storage faults (PROTOCOL.md §7.1): a crash and restart with damaged durable state. The
\* server detects the damage and is recovering, unless NoStorageRecovery.
Detected == Bug # "NoStorageRecovery"
StorageFault(i) == CrashRestart([Cur EXCEPT !.storageFaults = @ + 1], i)
MarkRecovering(t, i) == [t EXCEPT !.recovering[i] = IF Detected THEN TRUE ELSE @]

\* The epoch files are lost beside a non-empty log: ZooKeeper's rule (the epoch of the last
\* logged zxid), or 0 when the loss goes unnoticed.
LoseEpochFiles(i) ==
    /\ persisted[i] > 0
    /\ storageFaults < MaxStorageFaults
    /\ LET t == StorageFault(i)
           e == IF Detected THEN LastZxidOf(t.history[i])[1] ELSE 0
       IN Apply(MarkRecovering([t EXCEPT !.acceptedEpoch[i] = e, !.currentEpoch[i] = e], i))

\* The fsynced log records after the k-th are lost or corrupt (the snapshot survives).
LoseLogSuffix(i, k) ==
    /\ lastSnapshot[i] <= k
    /\ k < persisted[i]
    /\ storageFaults < MaxStorageFaults
    /\ LET t == StorageFault(i)
       IN Apply(MarkRecovering([t EXCEPT !.history[i] = SubSeq(@, 1, k), !.persisted[i] = k], i))

\* The whole data directory of a server that had joined is wiped. (The guard is not a
\* disjunction: TLC would count one successor per true disjunct.)
LoseDataDir(i) ==
    /\ ~(acceptedEpoch[i] = 0 /\ persisted[i] = 0)
    /\ storageFaults < MaxStorageFaults
    /\ LET t == StorageFault(i)
       IN Apply(MarkRecovering([t EXCEPT !.acceptedEpoch[i] = 0, !.currentEpoch[i] = 0,
                                         !.history[i] = <<>>, !.persisted[i] = 0,
                                         !.lastSnapshot[i] = 0, !.lastCommitted[i] = 0], i))

\* A message no handler accepts in the receiver's role (should not be triggered).
FilterNonexistentMessage(i, j) ==
    /\ msgs[j][i] # <<>>
    /\ ~Handles(i, j, Head(msgs[j][i]))
    /\ Apply(Flag(Pop(Cur, j, i), "messageIllegal"))

-----------------------------------------------------------------------------
(* The next-state relation: every action of TLA_NAMES (model/src/action.rs). *)

Next ==
    \/ \E i \in Server : ElectLeader(i)
    \/ \E i, j \in Server : FollowLeader(i, j)
    \/ \E i \in Server : LeaderTimeout(i)
    \/ \E i, j \in Server : LeaderProcessFOLLOWERINFO(i, j)
    \/ \E i, j \in Server : FollowerProcessLEADERINFO(i, j)
    \/ \E i, j \in Server : LeaderProcessACKEPOCH(i, j)
    \/ \E i, j \in Server : LeaderSyncFollower(i, j)
    \/ \E i, j \in Server : FollowerProcessSyncMessage(i, j)
    \/ \E i, j \in Server : FollowerProcessPROPOSALInSync(i, j)
    \/ \E i, j \in Server : FollowerProcessCOMMITInSync(i, j)
    \/ \E i, j \in Server : FollowerProcessNEWLEADER(i, j)
    \/ \E i \in Server : FollowerProcessNEWLEADERAfterCurrentEpochUpdated(i)
    \/ \E i, j \in Server : LeaderProcessACKLD(i, j)
    \/ \E i, j \in Server : FollowerProcessUPTODATE(i, j)
    \/ \E i \in Server : LeaderProcessRequest(i)
    \/ \E i \in Server : LeaderBroadcastPROPOSAL(i)
    \/ \E i \in Server : SyncProcessorLogRequest(i)
    \/ \E i, j \in Server : FollowerProcessPROPOSAL(i, j)
    \/ \E i, j \in Server : LeaderProcessACK(i, j)
    \/ \E i, j \in Server : FollowerProcessCOMMIT(i, j)
    \/ \E i \in Server : \E k \in 1..Len(history[i]) : TakeSnapshot(i, k)
    \/ \E i, j \in Server : PartitionStart(i, j)
    \/ \E i, j \in Server : PartitionRecover(i, j)
    \/ \E i \in Server : NodeCrash(i)
    \/ \E i \in Server : LoseEpochFiles(i)
    \/ \E i \in Server : \E k \in 0..Len(history[i]) : LoseLogSuffix(i, k)
    \/ \E i \in Server : LoseDataDir(i)
    \/ \E i, j \in Server : FilterNonexistentMessage(i, j)

Spec == Init /\ [][Next]_vars
SpecEpoch1 == InitEpoch1 /\ [][Next]_vars

-----------------------------------------------------------------------------
(* Invariants (PROTOCOL.md §8; model/src/invariants.rs), by id.            *)

LeaderIn(i, phases) == state[i] = "LEADING" /\ zabState[i] \in phases

\* ModelState::connected: i and j are leader and follower, either way round.
FollowsOf(f, l) == state[f] = "FOLLOWING" /\ leaderOf[f] = l
                   /\ state[l] = "LEADING" /\ f \in learners[l]
Connected(i, j) == FollowsOf(i, j) \/ FollowsOf(j, i)
\* Pairs <<leader, follower>> of a follower connected to its leader.
LeaderFollowerPairs == {<<leaderOf[f], f>> : f \in {g \in Server : state[g] = "FOLLOWING"
                                                       /\ Connected(leaderOf[g], g)}}
SameEpochBroadcastPairs ==
    {p \in LeaderFollowerPairs : /\ zabState[p[1]] = "BROADCAST" /\ zabState[p[2]] = "BROADCAST"
                                 /\ currentEpoch[p[1]] = currentEpoch[p[2]]}

Leadership1 ==
    \A i, j \in Server :
        (i # j /\ LeaderIn(i, {"SYNCHRONIZATION", "BROADCAST"})
               /\ LeaderIn(j, {"SYNCHRONIZATION", "BROADCAST"}))
        => acceptedEpoch[i] # acceptedEpoch[j]

Leadership2 == \A a, b \in epochLeader : a[1] = b[1] => a = b

PrefixConsistency ==
    \A i, j \in Server :
        LET a == Delivered(i)
            b == Delivered(j)
            k == Min(Len(a), Len(b))
        IN SubSeq(a, 1, k) = SubSeq(b, 1, k)

Integrity ==
    LET proposed == {p.txn : p \in proposalMsgsLog}
    IN \A i \in Server : Range(Delivered(i)) \subseteq proposed

Agreement ==
    \A i, j \in Server : Range(Delivered(i)) \subseteq Range(Delivered(j))
                         \/ Range(Delivered(j)) \subseteq Range(Delivered(i))

TotalOrder ==
    \A i, j \in Server :
        LET a == Delivered(i)
            b == Delivered(j)
        IN \A k2 \in 1..Len(a) :
             LET jy == Position(b, a[k2])
             IN jy # 0 => Range(SubSeq(a, 1, k2 - 1)) \subseteq Range(SubSeq(b, 1, jy - 1))

LocalPrimaryOrder ==
    \A p1, p2 \in proposalMsgsLog :
        (p1.source = p2.source /\ p1.epoch = p2.epoch /\ ZxidLt(p1.txn.zxid, p2.txn.zxid))
        => \A j \in Server :
             LET d == Delivered(j)
                 k == Position(d, p2.txn)
             IN k # 0 => p1.txn \in Range(SubSeq(d, 1, k - 1))

GlobalPrimaryOrder ==
    \A i \in Server :
        LET d == Delivered(i)
        IN \A k \in 1..(Len(d) - 1) : d[k].zxid[1] <= d[k + 1].zxid[1]

PrimaryIntegrity ==
    \A p \in LeaderFollowerPairs :
        LET l == p[1]
            f == p[2]
        IN (zabState[l] = "BROADCAST" /\ zabState[f] = "BROADCAST")
           => \A x \in Range(Delivered(f)) :
                 x.zxid[1] < currentEpoch[l] => x \in Range(Delivered(l))

CommittedLogMonotonicity ==
    \A i \in Server : LeaderIn(i, {"BROADCAST"}) => IsPrefix(committedLog, Delivered(i))

CommittedLogDurability == "committedLogTruncated" \notin violations

ProcessConsistency ==
    \A p \in LeaderFollowerPairs :
        nlStage[p[2]] = "DONE" => IsPrefix(history[p[2]], history[p[1]])

LeaderLogCompleteness ==
    \A i \in Server :
        LeaderIn(i, {"SYNCHRONIZATION", "BROADCAST"}) => IsPrefix(committedLog, history[i])

CommitConsistency ==
    \A p \in SameEpochBroadcastPairs : IsPrefix(Delivered(p[2]), Delivered(p[1]))

HistoryConsistency ==
    \A p \in SameEpochBroadcastPairs : IsPrefix(history[p[2]], history[p[1]])

CheckStateConsistent == "stateInconsistent" \notin violations
CheckProposalConsistent == "proposalInconsistent" \notin violations
CheckCommitConsistent == "commitInconsistent" \notin violations
CheckAckConsistent == "ackInconsistent" \notin violations
CheckMessageLegal == "messageIllegal" \notin violations

\* Rust checks epochs, indices, zxid order and that the leader (follower) record is
\* present exactly while LEADING (FOLLOWING). Here the records are the leader-only and
\* follower-only variables: outside the role they must hold the canonical reset values
\* (this is what makes TLC's states a bijective image of the model's).
WellFormed ==
    \A i \in Server :
        /\ currentEpoch[i] <= acceptedEpoch[i]
        /\ lastCommitted[i] <= Len(history[i])
        /\ persisted[i] <= Len(history[i])
        /\ lastSnapshot[i] <= persisted[i]
        /\ \A k \in 1..(Len(history[i]) - 1) : ZxidLt(history[i][k].zxid, history[i][k + 1].zxid)
        /\ state[i] # "LEADING" =>
              /\ learners[i] = {} /\ connecting[i] = {} /\ connectingLive[i] = {}
              /\ electing[i] = NoElectings /\ ackldRecv[i] = {} /\ ackldLive[i] = {}
              /\ forwarding[i] = {} /\ tempMaxEpoch[i] = 0 /\ ackSets[i] = <<>>
              /\ sendCounter[i] = 0
        /\ state[i] # "FOLLOWING" =>
              /\ leaderOf[i] = 0 /\ syncMode[i] = "NONE" /\ nlStage[i] = "WAITING"
              /\ packets[i] = <<>> /\ syncCommitted[i] = 0
        /\ state[i] = "FOLLOWING" => leaderOf[i] \in Server

\* The ZNode tree and anomalies of every server's delivered prefix. The ZNode
\* invariants are stated over r = Replays so that AllInvariants replays once per state.
Replays == [i \in Server |-> Replay(Delivered(i))]
NoAnomalyIn(r, a) == \A i \in Server : a \notin r[i].anoms
ReplicaAgreementIn(r) ==
    \A i, j \in Server :
        LastZxidOf(Delivered(i)) = LastZxidOf(Delivered(j)) => r[i].tree = r[j].tree

ZnodeReplicaAgreement == ReplicaAgreementIn(Replays)
ZnodeParentExists == NoAnomalyIn(Replays, "ZnodeParentExists")
ZnodeEphemeralLeaf == NoAnomalyIn(Replays, "ZnodeEphemeralLeaf")
ZnodeSequentialMonotonic == NoAnomalyIn(Replays, "ZnodeSequentialMonotonic")
ZnodeVersionStep == NoAnomalyIn(Replays, "ZnodeVersionStep")
ZnodeTxnApplies == NoAnomalyIn(Replays, "ZnodeTxnApplies")
SessionEphemeralCleanup == NoAnomalyIn(Replays, "SessionEphemeralCleanup")
SessionNoEphemeralForClosed == NoAnomalyIn(Replays, "SessionNoEphemeralForClosed")

\* Every invariant above, in the order of invariants.rs, as one operator: the
\* equality configurations check it (one replay per state instead of eight). The
\* bug configurations list the ids one by one, so that TLC names the broken one.
AllInvariants ==
    /\ Leadership1 /\ Leadership2 /\ PrefixConsistency /\ Integrity /\ Agreement
    /\ TotalOrder /\ LocalPrimaryOrder /\ GlobalPrimaryOrder /\ PrimaryIntegrity
    /\ CommittedLogMonotonicity /\ CommittedLogDurability /\ ProcessConsistency
    /\ LeaderLogCompleteness /\ CommitConsistency /\ HistoryConsistency
    /\ CheckStateConsistent /\ CheckProposalConsistent /\ CheckCommitConsistent
    /\ CheckAckConsistent /\ CheckMessageLegal /\ WellFormed
    /\ LET r == Replays
       IN /\ ReplicaAgreementIn(r)
          /\ \A a \in {"ZnodeParentExists", "ZnodeEphemeralLeaf", "ZnodeSequentialMonotonic",
                        "ZnodeVersionStep", "ZnodeTxnApplies", "SessionEphemeralCleanup",
                        "SessionNoEphemeralForClosed"} : NoAnomalyIn(r, a)

-----------------------------------------------------------------------------
(* Reachability examples (PROTOCOL.md §8.4; invariants::examples).         *)
(* Stateright checks them as `sometimes` properties. TLC has no such       *)
(* property, so each example X has the invariant NoX == ~X: TLC reporting  *)
(* "Invariant NoX is violated" is the example, and its trace the witness   *)
(* (tla/mirror.py derives the configurations from MCEpoch1Snapshot.cfg).   *)

LeaderEstablished == \E i \in Server : LeaderIn(i, {"BROADCAST"})
TxnCommitted == \E i \in Server : lastCommitted[i] > 0
RestartedSyncedBy(mode) ==
    \E j \in restarted : /\ state[j] = "FOLLOWING"
                         /\ syncMode[j] = mode
                         /\ mode # "DIFF" \/ packets[j] # <<>>
RestartedSyncedByDiff == RestartedSyncedBy("DIFF")
RestartedSyncedByTrunc == RestartedSyncedBy("TRUNC")
RestartedSyncedBySnap == RestartedSyncedBy("SNAP")

NoLeaderEstablished == ~LeaderEstablished
NoTxnCommitted == ~TxnCommitted
NoRestartedSyncedByDiff == ~RestartedSyncedByDiff
NoRestartedSyncedByTrunc == ~RestartedSyncedByTrunc
NoRestartedSyncedBySnap == ~RestartedSyncedBySnap

=============================================================================
