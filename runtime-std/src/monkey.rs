//! Monkey mode: the runtime's effects failing on purpose, by a seeded fault plan.
