package bus

import (
	"slices"
	"strings"
	"testing"
)

func TestParseBrokers(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string // nil: error
	}{
		{"127.0.0.1:9092", []string{"127.0.0.1:9092"}},
		{"kafka1:9092, kafka2:9093 ,kafka3", []string{"kafka1:9092", "kafka2:9093", "kafka3:9092"}},
		{"[::1]:19092,[fd00::2]", []string{"[::1]:19092", "[fd00::2]:9092"}},
		{"localhost", []string{"localhost:9092"}},
		{"", nil},
		{"  ", nil},
		{"a:9092,,b:9092", nil},
		{"a:9092,", nil},
		{":9092", nil},
		{"host:", nil},
		{"host:0", nil},
		{"host:65536", nil},
		{"host:port", nil},
		{"::1", nil},
		{"a b:9092", nil},
	} {
		got, err := ParseBrokers(tc.in)
		if tc.want == nil {
			if err == nil {
				t.Errorf("ParseBrokers(%q) = %v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("ParseBrokers(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

// FuzzParseBrokers checks that ParseBrokers never panics and that what it
// returns is canonical: parsing its own output joined again gives the same
// list.
func FuzzParseBrokers(f *testing.F) {
	for _, s := range []string{"127.0.0.1:9092", "a,b:1", "[::1]:9092", "", ",", "x:99999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseBrokers(s)
		if err != nil {
			return
		}
		if len(got) == 0 {
			t.Fatalf("ParseBrokers(%q) returned no brokers and no error", s)
		}
		again, err := ParseBrokers(strings.Join(got, ","))
		if err != nil || !slices.Equal(again, got) {
			t.Fatalf("ParseBrokers(%q) = %v, but parsing that again gives %v, %v", s, got, again, err)
		}
	})
}
