pub mod bmc;
