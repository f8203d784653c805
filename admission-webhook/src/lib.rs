//! `tailor-admission-webhook`: rewrites pod requests at creation. Not implemented yet (see the open issue).
