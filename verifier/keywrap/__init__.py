"""Key release: wrap a model's data-encryption key to an attested enclave key (JWE), and the provider's KEK."""
