//! netpol
