//! `tailor-expander`: picks node groups by price or least waste. Not implemented yet (see the open issue).
