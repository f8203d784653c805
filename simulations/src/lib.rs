//! `tailor-sim`: offline cost simulation. Not implemented yet (see the open issue).
