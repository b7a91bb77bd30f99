//go:build tools

// Package actionlint pins the workflow linter the tests run, so that this folder's go.sum covers it
// and setup builds it with -mod=readonly.
package actionlint

import _ "github.com/rhysd/actionlint/cmd/actionlint"
