//! zab-nemesis: a Jepsen-style suite of real servers (zabd or Apache ZooKeeper) in network
//! namespaces under kills, pauses, partitions, packet loss and storage damage, with client
//! histories checked for linearizability and durability.

pub mod check;
pub mod cluster;
pub mod damage;
pub mod disk;
pub mod history;
pub mod nemesis;
pub mod report;
pub mod run;
pub mod topology;
pub mod workload;
