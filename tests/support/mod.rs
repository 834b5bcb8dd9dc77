pub mod bmc;
pub mod testdata;
