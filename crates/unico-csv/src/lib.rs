//! Unico CSV shapes (under construction).
