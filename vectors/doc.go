// Package vectors will hold setpay's test vectors, their generator and their
// checker (issue "Test vectors"). The vector files live in this directory.
package vectors
