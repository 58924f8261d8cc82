package vectors

import (
	"encoding/hex"
	"fmt"
)

func hexString(b []byte) string { return hex.EncodeToString(b) }

func parseHex(s string) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("vectors: bad hex: %w", err)
	}
	return b, nil
}
