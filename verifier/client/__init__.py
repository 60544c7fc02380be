"""The enclave SDK: what a customer's model runtime imports to attest to Keyward and receive its model key."""
