//! KMS over the JSON 1.1 front (`X-Amz-Target: TrentService.<Operation>`,
//! SigV4 service `kms`), and the calls other services (Parameter Store's
//! SecureString) make to it on their caller's behalf.

// Until Parameter Store calls it.
#![allow(dead_code, unused_imports)]

mod via;

pub use via::{Opened, Sealed, decrypt_via, encrypt_via};
