package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

func init() { register(newFingerprintsCmd) }

// maxFingerprintUpload bounds the clip a reference is made from; the
// server refuses more (its own limit is what counts).
const maxFingerprintUpload = 64 << 20

func newFingerprintsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fingerprints",
		Short: "Manage the fingerprint engine's library of reference clips",
		Long: `fingerprints manages the references the fingerprint engine looks for in
jobs (jingles, ads, music): add fingerprints a clip on the server (POST
/fingerprints), list shows the library, remove deletes a reference. Running
jobs read the library again every refresh of the engine's options.`,
	}
	cmd.AddCommand(newFingerprintsAddCmd(), newFingerprintsListCmd(), newFingerprintsRemoveCmd())
	return cmd
}

// fingerprintInfo is one reference as the API gives it.
type fingerprintInfo struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	DurationMs int64     `json:"duration_ms"`
	Items      int       `json:"items"`
	CreatedAt  time.Time `json:"created_at"`
}

func newFingerprintsAddCmd() *cobra.Command {
	var configPath, name string
	cmd := &cobra.Command{
		Use:     "add FILE",
		Short:   "Fingerprint a clip and add it to the library",
		Example: "  weir fingerprints add jingle.wav --name \"station jingle\"",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, api, err := loadEnginesConfig(cmd, configPath)
			if err != nil {
				return err
			}
			var info fingerprintInfo
			raw, err := postFingerprint(cmd.Context(), api, args[0], name, &info)
			if err != nil {
				return err
			}
			if cfg.JSON {
				_, err = cmd.OutOrStdout().Write(append(raw, '\n'))
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Added %s %q: %.1f s, %d fingerprint items\n",
				info.ID, info.Name, float64(info.DurationMs)/1000, info.Items)
			return nil
		},
	}
	addStreamsClientFlags(cmd, &configPath)
	cmd.Flags().StringVar(&name, "name", "", "the reference's name, reported with each match (default: the file name)")
	return cmd
}

// postFingerprint uploads file as a multipart POST /fingerprints.
func postFingerprint(ctx context.Context, api *vodClient, file, name string, v any) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	if name != "" {
		if err := mw.WriteField("name", name); err != nil {
			return nil, err
		}
	}
	fw, err := mw.CreateFormFile("file", filepath.Base(file))
	if err != nil {
		return nil, err
	}
	if n, err := io.Copy(fw, io.LimitReader(f, maxFingerprintUpload+1)); err != nil {
		return nil, err
	} else if n > maxFingerprintUpload {
		return nil, fmt.Errorf("%s: more than %d MiB; a reference is a short clip", file, maxFingerprintUpload>>20)
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, api.base+"/fingerprints", &body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return api.do(req, v)
}

func newFingerprintsListCmd() *cobra.Command {
	return newTableListCmd("List the references of the library", "/fingerprints",
		"No references; add one with: weir fingerprints add FILE --name NAME",
		"ID\tNAME\tDURATION\tITEMS\tADDED",
		func(tw io.Writer, f fingerprintInfo) {
			fmt.Fprintf(tw, "%s\t%s\t%.1f s\t%d\t%s\n", f.ID, f.Name, float64(f.DurationMs)/1000, f.Items,
				f.CreatedAt.Local().Format("2006-01-02 15:04"))
		})
}

// newTableListCmd is a "list" command that reads the API list at path and
// prints it as a table with header and a row per item (empty when there
// is none), or, with --json, as the API answered it.
func newTableListCmd[T any](short, path, empty, header string, row func(io.Writer, T)) *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "list",
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, api, err := loadEnginesConfig(cmd, configPath)
			if err != nil {
				return err
			}
			var list struct {
				Items []T `json:"items"`
			}
			raw, err := api.get(cmd.Context(), path, &list)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if cfg.JSON {
				_, err = out.Write(append(raw, '\n'))
				return err
			}
			if len(list.Items) == 0 {
				fmt.Fprintln(out, empty)
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, header)
			for _, it := range list.Items {
				row(tw, it)
			}
			return tw.Flush()
		},
	}
	addStreamsClientFlags(cmd, &configPath)
	return cmd
}

func newFingerprintsRemoveCmd() *cobra.Command {
	return newRemoveCmd("Remove a reference from the library", "", "/fingerprints/")
}

// newRemoveCmd is a "remove ID" command that deletes the API resource at
// prefix+ID and says so.
func newRemoveCmd(short, long, prefix string) *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "remove ID",
		Short: short,
		Long:  long,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, api, err := loadEnginesConfig(cmd, configPath)
			if err != nil {
				return err
			}
			req, err := http.NewRequestWithContext(cmd.Context(), http.MethodDelete, api.base+prefix+url.PathEscape(args[0]), nil)
			if err != nil {
				return err
			}
			if _, err := api.do(req, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Removed %s\n", args[0])
			return nil
		},
	}
	addStreamsClientFlags(cmd, &configPath)
	return cmd
}
