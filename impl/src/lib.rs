//! `zab-server`: the production Zab replica (`zabd`). Built in the server issue.
