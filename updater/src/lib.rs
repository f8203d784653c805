//! `tailor-updater`: applies recommendations within disruption budgets. Not implemented yet (see the open issue).
