//! Process plumbing shared by every Tailor binary.
