package apiserver

import (
	"log"
	"strings"

	"k8s.io/klog/v2"
)

// klogWriter sends net/http's error log to klog at a verbose level: TLS
// handshake noise from probing clients is not worth the default level.
type klogWriter struct{}

func (klogWriter) Write(p []byte) (int, error) {
	klog.V(2).InfoS("http server", "msg", strings.TrimSpace(string(p)))
	return len(p), nil
}

func klogWriterLogger() *log.Logger { return log.New(klogWriter{}, "", 0) }
