//go:build !unix

package main

// smallStacks does nothing off unix, where there is no exec(2) to restart with a
// GODEBUG setting.
func smallStacks() {}
