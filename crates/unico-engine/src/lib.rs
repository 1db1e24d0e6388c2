//! Unico segment engine (under construction).
