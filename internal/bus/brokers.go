package bus

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// DefaultKafkaPort is the port ParseBrokers adds to a host given without
// one.
const DefaultKafkaPort = 9092

// ParseBrokers parses a comma-separated broker list, as given to --kafka
// ("kafka1:9092,kafka2:9092"). Spaces around entries are ignored; a host
// without a port gets DefaultKafkaPort; IPv6 hosts need brackets
// ("[::1]:9092"). It fails on an empty list, an empty entry, or a port that
// is not a number from 1 to 65535.
func ParseBrokers(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("broker list is empty")
	}
	parts := strings.Split(s, ",")
	brokers := make([]string, 0, len(parts))
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" {
			return nil, fmt.Errorf("broker list %q: entry %d is empty", s, i+1)
		}
		host, port, err := net.SplitHostPort(p)
		if err != nil {
			// No port (or a bare IPv6 address, which is ambiguous
			// without brackets and rejected below).
			if strings.Contains(p, ":") && !strings.HasPrefix(p, "[") {
				return nil, fmt.Errorf("broker %q: %w", p, err)
			}
			host, port = strings.TrimSuffix(strings.TrimPrefix(p, "["), "]"), strconv.Itoa(DefaultKafkaPort)
		}
		if host == "" {
			return nil, fmt.Errorf("broker %q: no host", p)
		}
		if !validHost(host) {
			return nil, fmt.Errorf("broker %q: invalid host %q", p, host)
		}
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("broker %q: port %q is not a number from 1 to 65535", p, port)
		}
		brokers = append(brokers, net.JoinHostPort(host, strconv.Itoa(n)))
	}
	return brokers, nil
}

// validHost accepts host names and IP addresses (IPv6 with its zone):
// letters, digits and ".-_:%".
func validHost(h string) bool {
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '.' || c == '-' || c == '_' || c == ':' || c == '%') {
			return false
		}
	}
	return true
}
