//! `tailor-recommender`: VPA-compatible recommendations. Not implemented yet (see the open issue).
