//! The fault plan of monkey mode (DESIGN.md, "Faults by design").
