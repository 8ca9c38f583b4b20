//! Development dataset generator: `thaw dev seed` / `thaw dev mutate`.

pub mod load;
