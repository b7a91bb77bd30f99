//go:build tools

// Package seaweedfs pins the S3-compatible server the shared-state tests run (SeaweedFS, Apache-2.0),
// so that this folder's go.sum covers it and setup builds it with -mod=readonly.
package seaweedfs

import _ "github.com/seaweedfs/seaweedfs/weed"
