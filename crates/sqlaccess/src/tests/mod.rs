mod mysql;
mod postgres;
