// Package stack sizes goroutine stacks ahead of deep work.
package stack
