//! Unico filter language (under construction).
