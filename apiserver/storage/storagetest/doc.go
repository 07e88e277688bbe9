// Package storagetest is the contract test suite of storage.Interface. Every
// backend runs it from its own tests:
//
//	func TestContract(t *testing.T) {
//		storagetest.RunContractTests(t, func(t *testing.T) storage.Interface { ... })
//	}
package storagetest
