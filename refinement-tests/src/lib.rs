//! `zab-refinement`: checks the server against the model. Built in the refinement issue.
