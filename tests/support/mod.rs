pub mod bmc;
pub mod spi;
pub mod testdata;
