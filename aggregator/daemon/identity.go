package daemon

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// agentGUIDFile holds the installation's agent guid, generated once.
const agentGUIDFile = "agent_guid"

// LoadOrCreateGUID returns the guid stored in dir, creating and storing a
// new random (version 4) one on first use.
func LoadOrCreateGUID(dir string) (string, error) {
	path := filepath.Join(dir, agentGUIDFile)
	b, err := os.ReadFile(path)
	if err == nil {
		if id := strings.TrimSpace(string(b)); len(id) == 36 {
			return id, nil
		}
		return "", fmt.Errorf("agent guid file %s is damaged: remove it to generate a new guid", path)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("read agent guid: %w", err)
	}
	var u [16]byte
	if _, err := rand.Read(u[:]); err != nil {
		return "", err
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	id := fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(id+"\n"), 0o640); err != nil {
		return "", fmt.Errorf("store agent guid: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("store agent guid: %w", err)
	}
	return id, nil
}
