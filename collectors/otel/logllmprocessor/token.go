package logllmprocessor // import "github.com/logllm/logllm-plugin/collectors/otel/logllmprocessor"

import (
	"errors"
	"os"
	"strings"
	"sync"
	"time"
)

// tokenFile reads a bearer token from a file and re-reads it when the file changes, so a
// rotated token is used without restarting the collector.
type tokenFile struct {
	path    string
	mu      sync.Mutex
	modTime time.Time
	size    int64
	token   string
}

func newTokenFile(path string) (*tokenFile, error) {
	t := &tokenFile{path: path}
	if _, err := t.get(); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *tokenFile) get() (string, error) {
	info, err := os.Stat(t.path)
	if err != nil {
		return "", err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.token != "" && info.ModTime().Equal(t.modTime) && info.Size() == t.size {
		return t.token, nil
	}
	data, err := os.ReadFile(t.path)
	if err != nil {
		return "", err
	}
	token := strings.TrimSpace(string(data))
	if token == "" {
		return "", errors.New(t.path + " is empty")
	}
	t.token, t.modTime, t.size = token, info.ModTime(), info.Size()
	return token, nil
}
