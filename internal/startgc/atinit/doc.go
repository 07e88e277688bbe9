// Package atinit holds the garbage collector (startgc.Hold) from package
// initialisation on when the process runs `kubesim up`: the packages'
// initialisation allocates about 13 MB that stays live, three collections
// before main, about a tenth of the API server's start. kubesim up
// releases it (startgc.Release) once the cluster is ready; the other
// commands as they start. Package main imports it for that effect alone:
//
//	import _ "github.com/kubesim/kubesim/internal/startgc/atinit"
//
// Go initialises a package once its imports are, the first by import path
// among those ready: this one, which imports only the standard library,
// startgc and hugepages/early (whose Up reads the command line), comes before the Kubernetes packages whose initialisation
// allocates.
package atinit
