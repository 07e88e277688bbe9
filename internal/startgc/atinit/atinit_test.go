package atinit

import "testing"

func TestUp(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want bool
	}{
		{[]string{"up"}, true},
		{[]string{"up", "--port", "0"}, true},
		{[]string{"-v", "4", "up"}, true},
		{[]string{"--v=4", "up"}, true},
		{[]string{"--v", "2", "up", "--kubeconfig", "up"}, true},
		{nil, false},
		{[]string{"version"}, false},
		{[]string{"node", "--name", "up"}, false},
		{[]string{"-v", "up"}, false}, // up is -v's value: cobra refuses it
		{[]string{"experiment", "run", "up"}, false},
		{[]string{"--help"}, false},
	} {
		if got := Up(tc.args); got != tc.want {
			t.Errorf("Up(%q) = %v, want %v", tc.args, got, tc.want)
		}
	}
}
